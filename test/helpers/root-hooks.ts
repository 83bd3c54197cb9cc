// Mocha global fixtures (loaded with --require): find the server once, share
// its URI with every suite through the environment (child processes too), and
// make the private servers of the fault tests the same kind as it.
import mysql from 'mysql2/promise';
import { kindOfVersion, serverKind, SERVER_KIND_ENV } from './private-server.js';
import { findServer, SERVER_ENV, type Server } from './server.js';

let server: Server | undefined;

export async function mochaGlobalSetup(): Promise<void> {
  try {
    server = await findServer();
    const conn = await mysql.createConnection({ uri: server.url });
    const [[{ version }]] = (await conn.query('SELECT VERSION() AS version')) as unknown as [[{ version: string }]];
    await conn.end();
    const kind = kindOfVersion(version);
    if (process.env[SERVER_KIND_ENV] === undefined) process.env[SERVER_KIND_ENV] = kind;
    else if (serverKind() !== kind) {
      throw new Error(`${SERVER_KIND_ENV}=${serverKind()} but the server under test is ${version}: set ${SERVER_KIND_ENV}=${kind} (or unset it)`);
    }
    console.log(`locktable tests: server ${version}; private servers ${serverKind()}`);
  } catch (err) {
    // One clear line, not a stack trace.
    console.error(`locktable tests: ${(err as Error).message}`);
    process.exit(1);
  }
  process.env[SERVER_ENV] = server.url;
}

export async function mochaGlobalTeardown(): Promise<void> {
  await server?.stop?.();
}
