/**
 * The baseline of the HTTP benchmarks: a bare `Deno.serve` hello-world, no framework, no body read.
 *
 *   deno run --allow-net bench/hello_server.ts PORT
 *
 * @module
 */
const port = Number(Deno.args[0] ?? "8081");
Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, () => new Response("Hello, world"));
