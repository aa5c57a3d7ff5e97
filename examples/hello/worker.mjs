// A hello-world modules worker: `npx miniflare examples/hello/worker.mjs --modules`
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    return new Response(`Hello from ${env.GREETING ?? "Miniflare"} at ${url.pathname}!\n`, {
      headers: { "Content-Type": "text/plain" },
    });
  },
};
