/**
 * The embedded dead-letter sink: one NDJSON line per rejected event in
 * `$DEAD_LETTER_DIR/dt=YYYY-MM-DD/dead_letters.ndjson`, fsynced (with group commit) before the
 * request that carried the event is answered. Readable with `jq`, DuckDB or any JSON reader.
 *
 * @module
 */
import { join } from "node:path";
import { GroupCommitter } from "../group_commit.ts";
import type { DeadLetter, DeadLetterSink } from "../durable_log.ts";
import { syncDir, writeAll } from "../../shared/fs.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** The JSON form of a dead letter: original bytes as text when they are UTF-8, else base64. */
export function deadLetterJson(letter: DeadLetter): Record<string, unknown> {
  let raw: string, encoding: "utf8" | "base64";
  if (typeof letter.raw === "string") [raw, encoding] = [letter.raw, "utf8"];
  else {
    try {
      [raw, encoding] = [utf8.decode(letter.raw), "utf8"];
    } catch {
      [raw, encoding] = [btoa(String.fromCharCode(...letter.raw)), "base64"];
    }
  }
  const { raw: _, ...rest } = letter;
  return { ...rest, raw, raw_encoding: encoding };
}

/** Dead letters as fsynced NDJSON files. */
export class FileDeadLetterSink implements DeadLetterSink {
  readonly #dir: string;
  readonly #committer: GroupCommitter<DeadLetter>;
  readonly #now: () => Date;

  constructor(dir: string, options: { maxPending?: number; now?: () => Date } = {}) {
    this.#dir = dir;
    this.#now = options.now ?? (() => new Date());
    this.#committer = new GroupCommitter((letters) => this.#write(letters), {
      maxPending: options.maxPending ?? 100_000,
    });
  }

  send(letters: DeadLetter[]): Promise<void> {
    return this.#committer.submit(letters);
  }

  async #write(letters: DeadLetter[]): Promise<void> {
    const dir = join(this.#dir, `dt=${this.#now().toISOString().slice(0, 10)}`);
    await Deno.mkdir(dir, { recursive: true });
    const path = join(dir, "dead_letters.ndjson");
    const text = letters.map((l) => JSON.stringify(deadLetterJson(l))).join("\n") + "\n";
    let created = false;
    try {
      await Deno.stat(path);
    } catch {
      created = true;
    }
    using f = await Deno.open(path, { create: true, append: true });
    const data = encoder.encode(text);
    await writeAll(f, data);
    await f.syncData();
    if (created) await syncDir(dir);
  }

  close(): Promise<void> {
    return this.#committer.close();
  }
}
