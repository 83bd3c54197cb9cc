// Finds the MySQL/MariaDB server the tests run against, once per run:
// MYSQL_URL, else the local server on 127.0.0.1:3306, else a testcontainers
// MySQL where Docker answers. Without any, the run stops with one line.
import { existsSync } from 'node:fs';
import mysql from 'mysql2/promise';

export const SERVER_ENV = 'LOCKTABLE_TEST_SERVER';
const LOCAL = 'mysql://root@127.0.0.1:3306/test';

async function answers(url: string): Promise<string | undefined> {
  let conn: mysql.Connection | undefined;
  try {
    conn = await mysql.createConnection({ uri: url, connectTimeout: 3000 });
    await conn.query('SELECT 1');
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await conn?.end().catch(() => {});
  }
}

export interface Server {
  /** A URI with a database the tests may create other databases from. */
  url: string;
  stop?: () => Promise<void>;
}

export async function findServer(): Promise<Server> {
  const given = process.env.MYSQL_URL;
  if (given) {
    const why = await answers(given);
    if (why) throw new Error(`MYSQL_URL does not answer (${why}): fix MYSQL_URL=mysql://user:password@host:port/database`);
    return { url: given };
  }
  const localWhy = await answers(LOCAL);
  if (!localWhy) return { url: LOCAL };
  if (existsSync('/var/run/docker.sock')) {
    try {
      const { MySqlContainer } = await import('@testcontainers/mysql');
      const container = await new MySqlContainer('mysql:8.0').withRootPassword('root').start();
      const url = `mysql://root:root@${container.getHost()}:${container.getPort()}/test`;
      const admin = await mysql.createConnection({ uri: url.replace(/\/test$/, '/mysql') });
      await admin.query('CREATE DATABASE IF NOT EXISTS test');
      await admin.end();
      return { url, stop: async () => void (await container.stop()) };
    } catch (err) {
      throw new Error(`no server for the tests: 127.0.0.1:3306 said "${localWhy}" and testcontainers failed (${(err as Error).message}): set MYSQL_URL=mysql://user:password@host:port/database`);
    }
  }
  throw new Error(`no server for the tests: 127.0.0.1:3306 said "${localWhy}" and Docker is not available: set MYSQL_URL=mysql://user:password@host:port/database`);
}
