// Mocha global fixtures (loaded with --require): find the server once, share
// its URI with every suite through the environment (child processes too).
import { findServer, SERVER_ENV, type Server } from './server.js';

let server: Server | undefined;

export async function mochaGlobalSetup(): Promise<void> {
  try {
    server = await findServer();
  } catch (err) {
    // One clear line, not a stack trace: the one thing to do is set MYSQL_URL.
    console.error(`locktable tests: ${(err as Error).message}`);
    process.exit(1);
  }
  process.env[SERVER_ENV] = server.url;
}

export async function mochaGlobalTeardown(): Promise<void> {
  await server?.stop?.();
}
