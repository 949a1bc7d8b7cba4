import { Command } from '@oclif/core';

export default class Hello extends Command {
  static summary = 'Print a line.';

  async run() {
    this.log('hello');
  }
}
