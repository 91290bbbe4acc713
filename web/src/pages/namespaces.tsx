import { useRoute } from 'preact-iso';
import { enc, formatDate, useApi } from '../api.js';
import { Loading, NotFoundNote, PageTitle, PrivateBadge } from '../components.js';
import { Description } from './description.js';
import { ContainerList, type ContainerSummary } from './listing.js';
import { VisibilityToggle } from './visibility.js';
import { ScopePolicy } from './policy.js';

interface Permissions {
  write: boolean;
  owner: boolean;
}

interface EntityView {
  name: string;
  description: string;
  private: boolean;
  createdAt: string;
  permissions: Permissions;
  collections: Array<{ name: string; description: string; private: boolean; updatedAt: string; containers: number }>;
}

interface CollectionView {
  entity: string;
  name: string;
  description: string;
  private: boolean;
  permissions: Permissions;
  containers: ContainerSummary[];
}

export function EntityPage() {
  const { params } = useRoute();
  const entity = params.entity!;
  const view = useApi<EntityView>(`/api/browse/entities/${enc(entity)}`);
  const e = view.data;
  return (
    <section>
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href="/">Home</a> / {entity}
      </nav>
      <PageTitle>{entity}</PageTitle>
      {view.loading && <Loading />}
      {view.error && <NotFoundNote error={view.error} />}
      {e && (
        <>
          <PrivateBadge isPrivate={e.private} />
          <Description path={enc(e.name)} text={noPlaceholder(e.description)} canEdit={e.permissions.owner} onChanged={view.reload} />
          {e.permissions.owner && <VisibilityToggle path={enc(e.name)} isPrivate={e.private} onChanged={view.reload} />}
          <ScopePolicy path={enc(e.name)} canEdit={e.permissions.owner} />
          <h2>Collections</h2>
          {e.collections.length === 0 ? (
            <p>No collections.</p>
          ) : (
            <ul class="cards">
              {e.collections.map((c) => (
                <li class="card" key={c.name}>
                  <h3>
                    <a href={`/library/${enc(e.name)}/${enc(c.name)}`}>{c.name}</a> <PrivateBadge isPrivate={c.private} />
                  </h3>
                  <p>{noPlaceholder(c.description)}</p>
                  <p class="meta">
                    {c.containers} containers · updated {formatDate(c.updatedAt)}
                  </p>
                </li>
              ))}
            </ul>
          )}
        </>
      )}
    </section>
  );
}

export function CollectionPage() {
  const { params } = useRoute();
  const { entity, collection } = params as { entity: string; collection: string };
  const view = useApi<CollectionView>(`/api/browse/collections/${enc(entity)}/${enc(collection)}`);
  const c = view.data;
  return (
    <section>
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href="/">Home</a> / <a href={`/library/${enc(entity)}`}>{entity}</a> / {collection}
      </nav>
      <PageTitle>{`${entity}/${collection}`}</PageTitle>
      {view.loading && <Loading />}
      {view.error && <NotFoundNote error={view.error} />}
      {c && (
        <>
          <PrivateBadge isPrivate={c.private} />
          <Description path={`${enc(entity)}/${enc(collection)}`} text={noPlaceholder(c.description)} canEdit={c.permissions.owner} onChanged={view.reload} />
          {c.permissions.owner && <VisibilityToggle path={`${enc(entity)}/${enc(collection)}`} isPrivate={c.private} onChanged={view.reload} />}
          <ScopePolicy path={`${enc(entity)}/${enc(collection)}`} canEdit={c.permissions.owner} />
          <h2>Containers</h2>
          <ContainerList items={c.containers} empty="No containers." />
        </>
      )}
    </section>
  );
}

/** Library clients' placeholder for "no description". */
const noPlaceholder = (text: string) => (text === 'No description' ? '' : text);
