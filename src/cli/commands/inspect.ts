import type { Command } from 'commander';
import { inspectSif, type InspectReport } from '../../sif/index.js';
import { CliError } from '../errors.js';
import { objectRow, out, sifAction, withFile } from './sif-common.js';

function printInspect(file: string, r: InspectReport): void {
  out(`File:          ${file} (${r.fileSize} bytes)`);
  out(`UUID:          ${r.header.uuid}`);
  out(`Architecture:  ${r.primaryArch || r.header.arch}`);
  out(`Created:       ${new Date(r.header.createdAt * 1000).toISOString()}`);
  out(`Modified:      ${new Date(r.header.modifiedAt * 1000).toISOString()}`);
  out(`Objects:       ${r.descriptors.length} of ${r.header.descriptorsTotal} descriptors used`);
  out();
  out('ID  |GROUP   |LINK    |SIF POSITION (start-end)  |TYPE');
  out('------------------------------------------------------------------------------');
  for (const d of r.descriptors) {
    const pos = `${d.offset}-${d.offset + d.size}`;
    let type = d.dataTypeName;
    if (d.partition) type += ` (${d.partition.fsTypeName}/${d.partition.partTypeName}/${d.partition.arch})`;
    if (d.signature) type += ` (${d.signature.hash}${d.signature.format ? `, ${d.signature.format}` : ''})`;
    if (d.sbomFormat) type += ` (${d.sbomFormat})`;
    if (d.cryptoMessage) type += ` (${d.cryptoMessage.formatName}/${d.cryptoMessage.messageName})`;
    if (d.name) type += ` ${d.name}`;
    out(`${objectRow(d)}${pos.padEnd(26)}|${type}`);
  }
  out();
  const labels = Object.entries(r.labels);
  out(`Labels:        ${labels.length ? `(from ${r.labelsSource})` : 'none'}`);
  for (const [k, v] of labels) out(`  ${k}: ${v}`);
  out(`Deffile:       ${r.deffile === null ? 'none' : `${Buffer.byteLength(r.deffile)} bytes (shelf inspect --deffile)`}`);
  out(`Signers:       ${r.signerFingerprints.length ? r.signerFingerprints.join(', ') : 'none'}`);
  if (r.encrypted) out('Encrypted:     yes');
  if (r.hasSbom) out('SBOM:          yes');
  for (const w of r.warnings) out(`Warning:       ${w}`);
}

export function registerInspect(program: Command): void {
  program
    .command('inspect <file>')
    .description('show what a SIF image holds: objects, architecture, labels, definition file, signers')
    .option('--json', 'everything as JSON')
    .option('--deffile', 'print only the definition file')
    .option('--labels', 'print only the labels')
    .action(
      sifAction(async (file: string, opts: { json?: boolean; deffile?: boolean; labels?: boolean }) => {
        const report = await withFile(file, (s) => inspectSif(s, { squashfsLabels: true }));
        if (opts.deffile) {
          if (report.deffile === null) throw new CliError(`${file} holds no definition file`, 1);
          process.stdout.write(report.deffile);
        } else if (opts.labels) {
          if (opts.json) out(JSON.stringify(report.labels, null, 2));
          else for (const [k, v] of Object.entries(report.labels)) out(`${k}: ${v}`);
        } else if (opts.json) {
          out(JSON.stringify({ file, ...report }, null, 2));
        } else {
          printInspect(file, report);
        }
      }),
    );
}
