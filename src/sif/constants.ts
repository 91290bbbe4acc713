export const HEADER_SIZE = 128;
export const DESCRIPTOR_SIZE = 585;
export const MAGIC = 'SIF_MAGIC';
/** Descriptor tables larger than this are refused: Apptainer makes 48 slots. */
export const MAX_DESCRIPTORS = 4096;
/** Text objects (deffile, JSON, signatures) are read into memory only up to this size. */
export const MAX_TEXT_OBJECT = 1 << 20;

export const DataType = {
  Deffile: 0x4001,
  EnvVar: 0x4002,
  Labels: 0x4003,
  Partition: 0x4004,
  Signature: 0x4005,
  GenericJSON: 0x4006,
  Generic: 0x4007,
  CryptoMessage: 0x4008,
  SBOM: 0x4009,
  OCIRootIndex: 0x400a,
  OCIBlob: 0x400b,
} as const;

/** The labels `siftool` (sylabs/sif v2.8.3, as in Debian) prints; newer types it calls Unknown. */
export const DATA_TYPE_NAMES: Record<number, string> = {
  0x4001: 'Def.FILE',
  0x4002: 'Env.Vars',
  0x4003: 'JSON.Labels',
  0x4004: 'FS',
  0x4005: 'Signature',
  0x4006: 'JSON.Generic',
  0x4007: 'Generic/Raw',
  0x4008: 'Cryptographic Message',
  0x4009: 'SBOM',
};
export const dataTypeName = (t: number): string => DATA_TYPE_NAMES[t] ?? 'Unknown';

/** Objects whose content is text worth showing (and small by nature). */
export const TEXT_TYPES: ReadonlySet<number> = new Set([DataType.Deffile, DataType.EnvVar, DataType.Labels, DataType.GenericJSON]);

export const ARCHES: Record<string, string> = {
  '00': 'unknown', '01': '386', '02': 'amd64', '03': 'arm', '04': 'arm64', '05': 'ppc64', '06': 'ppc64le',
  '07': 'mips', '08': 'mipsle', '09': 'mips64', '10': 'mips64le', '11': 's390x', '12': 'riscv64', '13': 'loong64',
};
export const archName = (code: string): string => ARCHES[code] ?? 'unknown';

export const FS_TYPES: Record<number, string> = {
  1: 'Squashfs', 2: 'Ext3', 3: 'Archive', 4: 'Raw', 5: 'Encrypted squashfs', 6: 'Gocryptfs squashfs',
};
export const PART_TYPES: Record<number, string> = { 1: 'System', 2: '*System', 3: 'Data', 4: 'Overlay' };
export const PART_PRIMARY_SYSTEM = 2;
export const ENCRYPTED_FS_TYPES: ReadonlySet<number> = new Set([5, 6]);

export const HASH_TYPES: Record<number, { name: string; node: string }> = {
  1: { name: 'SHA-256', node: 'sha256' },
  2: { name: 'SHA-384', node: 'sha384' },
  3: { name: 'SHA-512', node: 'sha512' },
  4: { name: 'BLAKE2s-256', node: 'blake2s256' },
  5: { name: 'BLAKE2b-256', node: '' }, // not in node:crypto; no signer writes it
};

export const GROUP_MASK = 0x0fffffff;
export const GROUP_FLAG = 0xf0000000;
export const DSSE_PAYLOAD_TYPE = 'application/vnd.sylabs.sif-metadata+json';
