export type DigestAlgorithm = 'sha256' | 'sha512';

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };

/** A parsed `algorithm:hex` content digest (the OCI form). */
export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
}

export function parseDigest(text: string): ParsedDigest | null {
  const m = /^(sha256|sha512):([0-9a-f]+)$/.exec(text);
  if (!m) return null;
  const algorithm = m[1] as DigestAlgorithm;
  return m[2]!.length === HEX_LENGTH[algorithm] ? { algorithm, hex: m[2]! } : null;
}

export const formatDigest = (d: ParsedDigest): string => `${d.algorithm}:${d.hex}`;
