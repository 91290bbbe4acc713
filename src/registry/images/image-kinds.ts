import type { ImagesRepo } from '../../meta/repos/images.js';

/**
 * What a container holds, for people (UI badges, search): `sif` (Library images, however they
 * were pushed), `oci-sif` (SingularityCE's OCI images of squashfs layers, pushed with docker://)
 * or `oci` (other OCI images only).
 */
export type ContainerKind = 'sif' | 'oci-sif' | 'oci';

export async function containerKinds(images: ImagesRepo, containerIds: string[]): Promise<Map<string, ContainerKind>> {
  const kinds = new Map<string, ContainerKind>();
  if (containerIds.length === 0) return kinds;
  const withImages = await images.containersWithUploaded(containerIds);
  const oci = await images.rawOciKinds(containerIds);
  for (const id of containerIds) kinds.set(id, 'sif');
  for (const row of oci) if (kinds.get(row.container_id) !== 'oci-sif') kinds.set(row.container_id, row.kind as ContainerKind);
  for (const id of withImages) kinds.set(id, 'sif');
  return kinds;
}

/** The kind of one container from whether it has Library images and the kinds of its raw OCI manifests. */
export function kindOf(hasImages: boolean, ociKinds: string[]): ContainerKind {
  if (hasImages) return 'sif';
  if (ociKinds.includes('oci-sif')) return 'oci-sif';
  return ociKinds.includes('oci') ? 'oci' : 'sif';
}
