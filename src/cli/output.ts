/**
 * Writes to standard output with back-pressure, for listings that can be long (a recursive `ls` of a
 * guest tree): memory stays bounded however many lines a command prints.
 */
export async function writeOut(text: string): Promise<void> {
  if (process.stdout.write(text)) return;
  await new Promise<void>((resolve) => process.stdout.once('drain', resolve));
}

/** Streams a JSON array, one element at a time. */
export class JsonArrayWriter {
  private count = 0;

  async add(value: unknown): Promise<void> {
    await writeOut((this.count++ === 0 ? '[\n' : ',\n') + JSON.stringify(value));
  }

  async end(): Promise<void> {
    await writeOut(this.count === 0 ? '[]\n' : '\n]\n');
  }
}
