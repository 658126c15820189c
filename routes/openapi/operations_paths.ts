/**
 * The operations side of the OpenAPI document (see `openapi.ts`): liveness, readiness and
 * metrics (`/health`, `/ready`, `/metrics`, public) and the lake jobs (`/admin/jobs`, behind
 * `ADMIN_TOKEN`).
 *
 * @module
 */
import { JOBS } from "../../lake/jobs.ts";
import { json, type PathItems, ROLES_WORKER } from "./responses.ts";
import { ref } from "./schemas.ts";

/** `GET /health`, `GET /ready` and `GET /metrics`, in that order. */
export function healthPaths(): PathItems {
  return {
    "/health": {
      get: {
        tags: ["operations"],
        operationId: "getHealth",
        summary: "Liveness",
        description: "200 while the process runs; checks nothing else.",
        responses: { "200": { description: "Alive", content: json(ref("Health")) } },
      },
    },
    "/ready": {
      get: {
        tags: ["operations"],
        operationId: "getReady",
        summary: "Readiness",
        description: "Probes the dependencies (log, lake disk, window store, Ollama) and, on the " +
          "ingest roles, whether events are refused for overload. 503 when a critical one is down.",
        responses: {
          "200": { description: "Ready", content: json(ref("Ready")) },
          "503": { description: "Not ready", content: json(ref("Ready")) },
        },
      },
    },
    "/metrics": {
      get: {
        tags: ["operations"],
        operationId: "getMetrics",
        summary: "Prometheus metrics",
        responses: {
          "200": {
            description: "Metrics in the Prometheus text exposition format",
            content: { "text/plain": { schema: { type: "string" } } },
          },
        },
      },
    },
  };
}

/** `GET /admin/jobs` and `POST /admin/jobs/{name}`, in that order. */
export function adminPaths(): PathItems {
  const adminErrors = {
    "401": {
      description: "Missing or wrong bearer token",
      headers: {
        "WWW-Authenticate": { schema: { type: "string" }, description: 'Bearer realm="admin"' },
      },
      content: json(ref("JobError")),
    },
    "404": {
      description: "Admin routes are off (no `ADMIN_TOKEN` configured)",
      content: json(ref("JobError")),
    },
  };
  return {
    "/admin/jobs": { get: getJobs(adminErrors) },
    "/admin/jobs/{name}": { post: runJob(adminErrors) },
  };
}

type AdminErrors = Record<"401" | "404", unknown>;

/** `GET /admin/jobs`. */
function getJobs(adminErrors: AdminErrors): Record<string, unknown> {
  return {
    tags: ["admin"],
    operationId: "getJobs",
    summary: "Lake job counters",
    description: ROLES_WORKER,
    security: [{ adminToken: [] }],
    responses: {
      "200": { description: "The jobs and their counters", content: json(ref("JobsState")) },
      ...adminErrors,
    },
  };
}

/** `POST /admin/jobs/{name}`. */
function runJob(adminErrors: AdminErrors): Record<string, unknown> {
  return {
    tags: ["admin"],
    operationId: "runJob",
    summary: "Run a lake job now",
    description: "Runs `silver`, `gold` or `all` (silver then gold) and answers its report. " +
      `One job at a time per lake, across processes. ${ROLES_WORKER}`,
    security: [{ adminToken: [] }],
    parameters: [{
      name: "name",
      in: "path",
      required: true,
      schema: { type: "string", enum: [...JOBS] },
    }],
    responses: {
      "200": { description: "The job ran", content: json(ref("JobReport")) },
      "400": { description: "Unknown job name", content: json(ref("JobError")) },
      ...adminErrors,
      "409": {
        description: "A job is already running, here or in another process",
        content: json(ref("JobError")),
      },
      "500": {
        description: "The job failed; `report` has the details",
        content: json(ref("JobError")),
      },
    },
  };
}
