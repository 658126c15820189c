/**
 * Where alerts go: the {@link AlertSink} interface and the log sink. The other sinks live with their
 * external system: the alerts topic in `../kafka/alert_sink.ts`, the lake's alerts table in
 * `lake/alerts.ts`.
 *
 * @module
 */
import type { Logger } from "../../shared/logger.ts";
import type { Alert } from "../../shared/alert.ts";

/** Where alerts go. A resolved send means the sink has them durably. */
export interface AlertSink {
  readonly name: string;
  send(alerts: Alert[]): Promise<void>;
  close(): Promise<void>;
}

/** The log line of the seeds' end-to-end check, grep-able as `[SUSPICIOUS] Fraud Detected`. */
export const SUSPICIOUS = "[SUSPICIOUS] Fraud Detected";

/**
 * Writes each alert as a warning log line: the message keeps the seeds' format (the published
 * `fraud_score`), the fields carry both scores, the severity and the disagreement flag.
 */
export class LogAlertSink implements AlertSink {
  readonly name = "log";
  readonly #logger: Logger;
  constructor(logger: Logger) {
    this.#logger = logger;
  }
  send(alerts: Alert[]): Promise<void> {
    for (const a of alerts) {
      this.#logger.warn(`${SUSPICIOUS}: user ${JSON.stringify(a.user_id)} score ${a.fraud_score}`, {
        alert_id: a.alert_id,
        user_id: a.user_id,
        rule_score: a.rule_score,
        llm_score: a.llm_score,
        fraud_score: a.fraud_score,
        severity: a.severity,
        llm_disagrees: a.llm_disagrees,
        llm: a.llm,
        rules: a.rules.map((r) => r.name),
      });
    }
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
