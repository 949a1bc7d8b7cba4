/**
 * A gateway command's values as the inbox keeps them: every input of a `run.start` and every
 * answer of an `input.submit` sealed, since which of them are secret is known only once the
 * intake checks the command (against the workflow, or the step the run waits at). Opened again
 * just before that check. Additional data: `inbox:<cmd_id>:<inputs|answers>.<name>`.
 */
import type { CommandFrame } from '../protocol/gateway.js';
import { openAll, sealAll } from './seal-values.js';
import type { SecretBox } from './secret-box.js';

/** The inbox names of a command's values: `inputs` of a run.start, `answers` of an input.submit. */
const VALUE_ARGS: Partial<Record<CommandFrame['kind'], 'inputs' | 'answers'>> = {
  'run.start': 'inputs',
  'input.submit': 'answers',
};

const inboxAad = (cmdId: string, field: string) => (name: string) => `inbox:${cmdId}:${field}.${name}`;

/** Throws SECRETS_UNAVAILABLE (the key file cannot be created). */
export function sealGatewayCommand(command: CommandFrame, box: SecretBox): CommandFrame {
  const field = VALUE_ARGS[command.kind];
  const values = field === undefined ? undefined : (command.args as Record<string, unknown>)[field];
  if (field === undefined || !isValueRecord(values) || Object.keys(values).length === 0) return command;
  const args = { ...command.args, [field]: sealAll(values, box, inboxAad(command.cmd_id, field)) };
  return { ...command, args } as CommandFrame;
}

/** The inverse of sealGatewayCommand; throws SECRETS_UNAVAILABLE. */
export function openGatewayCommand(command: CommandFrame, box: SecretBox): CommandFrame {
  const field = VALUE_ARGS[command.kind];
  const values = field === undefined ? undefined : (command.args as Record<string, unknown>)[field];
  if (field === undefined || !isValueRecord(values)) return command;
  const args = { ...command.args, [field]: openAll(values, box, inboxAad(command.cmd_id, field)) };
  return { ...command, args } as CommandFrame;
}

function isValueRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
