/**
 * The durable log contract (`tests/durable_log_contract.ts`) run against the embedded log:
 * {@link WalEventLog} and {@link WalInput} on one {@link Wal}.
 *
 * The WAL keeps no committed offset of its own: the lake's progress file holds it, and `main.ts`
 * starts the input there (`bronze.committedOffset()`). This fixture plays the lake's part: it
 * remembers every commit and starts the next input at the last one.
 *
 * @module
 */
import { join } from "node:path";
import {
  durableLogContract,
  type DurableLogPair,
  isHandlerBug,
  logPair,
} from "../../tests/durable_log_contract.ts";
import type { LogInput, LogRecord } from "../durable_log.ts";
import { Wal } from "./wal.ts";
import { WalEventLog } from "./event_log.ts";
import { WalInput } from "./input.ts";

/** Reads every record of a copy of the WAL's files: what a crash now would leave on disk. */
async function readCopy(dir: string): Promise<LogRecord[]> {
  const copy = await Deno.makeTempDir({ prefix: "wal_contract_copy_" });
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile) await Deno.copyFile(join(dir, entry.name), join(copy, entry.name));
    }
    const wal = await Wal.open(copy);
    try {
      return await wal.read(wal.firstOffset, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    } finally {
      await wal.close();
    }
  } finally {
    await Deno.remove(copy, { recursive: true });
  }
}

durableLogContract("WAL", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wal_contract_" });
  const pairs: DurableLogPair[] = [];
  const errors: unknown[] = [];
  /** The lake's progress: the offset after the last committed record. */
  let progress = 0;
  return {
    async open(options = {}) {
      const wal = await Wal.open(dir, options);
      const walInput = new WalInput(wal, progress, {
        onError: (err) => isHandlerBug(err) || errors.push(err),
      });
      const input: LogInput = {
        start: (handler) => walInput.start(handler),
        async commit(topic, partition, nextOffset) {
          await walInput.commit(topic, partition, nextOffset);
          progress = Math.max(progress, nextOffset);
        },
        stop: () => walInput.stop(),
        close: () => walInput.close(),
      };
      const log = new WalEventLog(wal, () => walInput.committed, { maxLagEvents: 1_000_000 });
      const pair = logPair(log, input);
      pairs.push(pair);
      return pair;
    },
    stored: () => readCopy(dir),
    async cleanup() {
      try {
        for (const pair of pairs) await pair.close();
        if (errors.length > 0) throw new AggregateError(errors, "The WAL input reported errors");
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  };
});
