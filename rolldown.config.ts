/**
 * Bundles each oclif command (after tsc) with the modules it imports statically, zod included,
 * so that a CLI call loads a handful of files instead of a hundred: module loading is most of a
 * `status` call's time. @oclif/core stays shared (oclif has loaded it already), and the daemon's
 * own modules, which `start` imports lazily, stay separate files. One self-contained file per
 * command, written beside dist/commands (same depth, so relative imports stay valid) and then
 * moved over the tsc output by the build script.
 */
import { readdirSync } from 'node:fs';
import { defineConfig } from 'rolldown';

const commandsDir = 'dist/commands';
const lazyDaemonModules = /[\\/]dist[\\/]src[\\/](daemon[\\/]|cli[\\/]launcher\.js)/;
const topicCommand = /[\\/]dist[\\/]commands[\\/][^\\/]+[\\/][^\\/]+\.js$/;

/** Command files, topics included (`runs/list.js`), relative to dist/commands. */
const commandFiles = (readdirSync(commandsDir, { recursive: true }) as string[]).filter((file) =>
  file.endsWith('.js'),
);

export default commandFiles.map((file) =>
  defineConfig({
    input: { [file.replace(/\.js$/, '')]: `${commandsDir}/${file}` },
    platform: 'node',
    external: (id, importer, isResolved) => {
      // A command in a topic folder (store/recover.js) bundles the daemon modules it imports:
      // rolldown writes the relative path of an external one level too deep for such entries.
      if (isResolved) return lazyDaemonModules.test(id) && !topicCommand.test(importer ?? '');
      if (id.startsWith('.') || id.startsWith('/')) return false;
      return !(id === 'zod' || id.startsWith('zod/'));
    },
    output: { dir: 'dist/commands-bundled', format: 'esm', sourcemap: true, codeSplitting: false },
  }),
);
