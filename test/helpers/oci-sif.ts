import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { MEDIA, OciClient } from '../../src/client/oci.js';
import { RegistryAuth } from '../../src/client/registry-auth.js';

/**
 * Pushes what `singularity push image.oci.sif docker://…` leaves in a registry: an OCI image
 * manifest with an OCI config and one `application/vnd.sylabs.image.layer.v1.squashfs` layer
 * (random bytes here: registries do not look inside). Answers the manifest and layer digests.
 */
export async function pushOciSif(registryHost: string, repo: string, tag: string, workDir: string, size: number): Promise<{ manifestDigest: string; layerDigest: string }> {
  const reg = new OciClient(`http://${registryHost}`, new RegistryAuth(registryHost, null));
  const layer = randomBytes(size);
  const layerFile = path.join(workDir, `layer-${randomBytes(4).toString('hex')}.squashfs`);
  await writeFile(layerFile, layer);
  const layerDigest = `sha256:${createHash('sha256').update(layer).digest('hex')}`;
  await reg.pushFile(repo, layerFile, layerDigest, layer.length, { chunkSize: 1 << 20 });
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layerDigest] } }));
  const configType = 'application/vnd.oci.image.config.v1+json';
  const configDigest = await reg.pushBytes(repo, config, configType);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: configType, digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.sylabs.image.layer.v1.squashfs', digest: layerDigest, size: layer.length }],
    }),
  );
  return { manifestDigest: await reg.putManifest(repo, tag, manifest), layerDigest };
}
