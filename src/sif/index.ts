export { SifError, type SifErrorCode } from './errors.js';
export { BufferSource, FileSource, type RandomAccessSource } from './source.js';
export { readSif, type SifDescriptor, type SifHeader, type SifImage } from './format.js';
export { inspectSif, type InspectReport, type ObjectReport } from './inspect.js';
export { summarizeSif, type SifSummary } from './summary.js';
export { verifySif, type SignatureResult, type VerifyResult } from './verify.js';
export { HkpKeys, KeyChain, StaticKeys, keysFromFile, readPgpKeys, sshKeyId, type KeyProvider } from './keys.js';
export { readSigningKey, signSif, type SignResult, type SigningKey } from './sign.js';
