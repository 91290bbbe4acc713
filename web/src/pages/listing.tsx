import { formatDate, formatSize } from '../api.js';
import { Badge, KindBadge, PrivateBadge } from '../components.js';

export type SignatureState = 'verified' | 'unknown-key' | 'invalid' | 'unsigned';

export interface ContainerSummary {
  entity: string;
  collection: string;
  container: string;
  description: string;
  private: boolean;
  downloadCount?: number;
  updatedAt: string;
  tags: string[];
  arches: string[];
  signature: SignatureState;
  size: number;
  matched?: { field: 'name' | 'description' | 'digest' | 'tag'; text: string };
  kind?: 'sif' | 'oci-sif' | 'oci';
}

export const containerHref = (c: { entity: string; collection: string; container: string }) =>
  `/library/${[c.entity, c.collection, c.container].map(encodeURIComponent).join('/')}`;

const SIGNATURE: Record<SignatureState, { kind: 'ok' | 'warn' | 'bad' | 'plain'; text: string }> = {
  verified: { kind: 'ok', text: '✔ signed, verified' },
  'unknown-key': { kind: 'warn', text: 'signed, unknown key' },
  invalid: { kind: 'bad', text: '✖ signature invalid' },
  unsigned: { kind: 'plain', text: 'unsigned' },
};

export function ContainerSignature({ state }: { state: SignatureState }) {
  const s = SIGNATURE[state];
  return <Badge kind={s.kind}>{s.text}</Badge>;
}

const MATCHED: Record<string, string> = { description: 'Description', tag: 'Tag', digest: 'Digest' };

/** Cards of containers, as on the start page, in collections and in search results. */
export function ContainerList({ items, empty }: { items: ContainerSummary[]; empty: string }) {
  if (!items.length) return <p>{empty}</p>;
  return (
    <ul class="cards">
      {items.map((c) => (
        <li key={containerHref(c)} class="card">
          <h3>
            <a href={containerHref(c)}>
              {c.entity}/{c.collection}/{c.container}
            </a>{' '}
            <PrivateBadge isPrivate={c.private} /> <KindBadge kind={c.kind} />
          </h3>
          {c.description ? <p>{c.description}</p> : <p class="meta">No description</p>}
          {c.matched && c.matched.field !== 'name' && (
            <p class="matched">
              {MATCHED[c.matched.field]}: <mark>{c.matched.text}</mark>
            </p>
          )}
          <p class="meta">
            <ContainerSignature state={c.signature} />
            {c.arches.map((a) => (
              <Badge key={a} kind="plain">
                {a}
              </Badge>
            ))}
          </p>
          <p class="meta">
            {c.tags.length ? `tags ${c.tags.slice(0, 6).join(', ')}${c.tags.length > 6 ? ` +${c.tags.length - 6}` : ''} · ` : ''}
            {formatSize(c.size)} · last pushed {formatDate(c.updatedAt)}
            {c.downloadCount !== undefined ? ` · ${c.downloadCount} downloads` : ''}
          </p>
        </li>
      ))}
    </ul>
  );
}
