import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, DeleteBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { ROOT } from './shelf.js';
import { freePort } from './net.js';
import { run } from './run.js';

const SCRIPTS = path.join(ROOT, 'test/e2e/swift');

/** A running single-node OpenStack Swift with its S3 API (test/e2e/swift/*.sh), state in a temp dir. */
export interface SwiftServer {
  /** The S3 endpoint, e.g. http://127.0.0.1:41234 */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** AWS_* variables for a process that should reach this Swift through the SDK's default chain. */
  env: Record<string, string>;
  /** A `--blobs` URL for a new (or given) bucket on this Swift; extra query parameters appended. */
  blobsUrl(opts?: { bucket?: string; prefix?: string; query?: Record<string, string> }): string;
  /** An SDK client with the settings Swift needs. */
  client(): S3Client;
  stop(): Promise<void>;
}

/** Sets up and starts Swift on free ports; call `stop()` once the test file is done. */
export async function startSwift(): Promise<SwiftServer> {
  const dir = await mkdtemp(path.join(tmpdir(), 'shelf-swift-'));
  const ports = { S3_PORT: await freePort(), ACCOUNT_PORT: await freePort(), CONTAINER_PORT: await freePort(), OBJECT_PORT: await freePort() };
  const env = { SW: dir, ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])) };
  for (const script of ['setup.sh', 'start.sh']) {
    const res = await run('bash', [path.join(SCRIPTS, script)], { env, timeoutMs: 90_000 });
    if (res.code !== 0) {
      await run('bash', [path.join(SCRIPTS, 'stop.sh')], { env });
      await rm(dir, { recursive: true, force: true });
      throw new Error(`swift ${script} failed:\n${res.stdout}${res.stderr}`);
    }
  }
  const endpoint = `http://127.0.0.1:${ports.S3_PORT}`;
  const region = 'us-east-1';
  const accessKeyId = 'test:tester';
  const secretAccessKey = 'testing';
  const client = () =>
    new S3Client({
      endpoint,
      region,
      forcePathStyle: true,
      credentials: { accessKeyId, secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  await untilServing(client());
  return {
    endpoint,
    region,
    accessKeyId,
    secretAccessKey,
    env: { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_REGION: region },
    blobsUrl({ bucket = `shelf-${randomBytes(4).toString('hex')}`, prefix = '', query = {} } = {}) {
      const q = new URLSearchParams({ endpoint, region, 'path-style': 'true', ...query });
      return `s3://${bucket}${prefix ? `/${prefix}` : ''}?${q.toString()}`;
    },
    client,
    async stop() {
      await run('bash', [path.join(SCRIPTS, 'stop.sh')], { env });
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Waits until Swift creates and removes a bucket: right after start its servers may still
 * answer 503 (S3 SlowDown) on a loaded machine.
 */
async function untilServing(client: S3Client): Promise<void> {
  const bucket = `ready-${randomBytes(4).toString('hex')}`;
  const deadline = Date.now() + 60_000;
  try {
    for (;;) {
      try {
        await client.send(new CreateBucketCommand({ Bucket: bucket }));
        await client.send(new DeleteBucketCommand({ Bucket: bucket }));
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`swift did not serve in time: ${(err as Error).message}`, { cause: err });
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  } finally {
    client.destroy();
  }
}
