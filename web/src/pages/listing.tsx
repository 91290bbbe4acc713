import { formatDate } from '../api.js';
import { Badge, KindBadge, PrivateBadge } from '../components.js';

export interface ContainerSummary {
  entity: string;
  collection: string;
  container: string;
  description: string;
  private: boolean;
  downloadCount: number;
  updatedAt: string;
  tags: string[];
  kind?: 'sif' | 'oci-sif' | 'oci';
}

export const containerHref = (c: { entity: string; collection: string; container: string }) =>
  `/library/${[c.entity, c.collection, c.container].map(encodeURIComponent).join('/')}`;

/** Cards of containers, as on the start page and in collections. */
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
          <p>{c.description}</p>
          <p class="meta">
            {c.tags.slice(0, 6).map((t) => (
              <Badge key={t} kind="plain">
                {t}
              </Badge>
            ))}{' '}
            updated {formatDate(c.updatedAt)} · {c.downloadCount} downloads
          </p>
        </li>
      ))}
    </ul>
  );
}
