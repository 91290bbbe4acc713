import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FilesystemBlobStore } from '../../src/blobs/filesystem.js';
import { blobStoreSuite } from './driver-suite.js';

blobStoreSuite('filesystem', async () => {
  const root = await mkdtemp(path.join(tmpdir(), 'shelf-blobs-'));
  const store = new FilesystemBlobStore(root);
  await store.init();
  return {
    store,
    leftovers: async () => (await readdir(path.join(root, 'uploads'))).length,
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
});
