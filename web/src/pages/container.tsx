import { useState } from 'preact/hooks';
import { useRoute } from 'preact-iso';
import { api, enc, formatDate, formatSize, useApi, type ApiError } from '../api.js';
import { Badge, Copyable, ErrorNote, KindBadge, Loading, PageTitle, PrivateBadge } from '../components.js';
import { VisibilityToggle } from './visibility.js';
import { BuildButton } from './builds.js';

type SignerState = 'verified' | 'unknown-key' | 'invalid';

interface ImageDetail {
  id: string;
  digest: string;
  description: string;
  size: number;
  arch: string | null;
  tags: Record<string, string[]>;
  uploader: string;
  createdAt: string;
  updatedAt: string;
  downloadCount: number;
  deffile: string | null;
  labels: Record<string, string>;
  encrypted: boolean;
  fingerprints: string[];
  verification: {
    status: 'unsigned' | 'pending' | 'verified' | 'unverified';
    signatures: Array<{ id: number; format: string | null; fingerprint: string | null; state: SignerState; detail?: string }>;
  };
}

interface ContainerView {
  entity: string;
  collection: string;
  name: string;
  description: string;
  fullDescription: string;
  private: boolean;
  inheritedPrivate: boolean;
  downloadCount: number;
  createdAt: string;
  createdBy: string;
  updatedAt: string;
  permissions: { write: boolean; owner: boolean };
  kind?: 'sif' | 'oci-sif' | 'oci';
  images: ImageDetail[];
}

const STATE_TEXT: Record<SignerState, string> = { verified: 'verified', 'unknown-key': 'unknown key', invalid: 'invalid' };
const STATE_KIND = { verified: 'ok', 'unknown-key': 'warn', invalid: 'bad' } as const;

export function SignatureBadge({ v }: { v: ImageDetail['verification'] }) {
  switch (v.status) {
    case 'verified':
      return <Badge kind="ok">✔ signed, verified</Badge>;
    case 'pending':
      return <Badge kind="plain">signatures being checked</Badge>;
    case 'unsigned':
      return <Badge kind="plain">unsigned</Badge>;
    default:
      return v.signatures.some((s) => s.state === 'invalid') ? <Badge kind="bad">✖ signature invalid</Badge> : <Badge kind="warn">signed, unknown key</Badge>;
  }
}

function PullCommands({ view, image }: { view: ContainerView; image: ImageDetail }) {
  const host = location.host;
  const path = `${view.entity}/${view.collection}/${view.name}`;
  const allTags = Object.values(image.tags).flat();
  const ref = allTags.length ? `${path}:${allTags.includes('latest') ? 'latest' : allTags[0]}` : `${path}:sha256.${image.digest.replace(/^sha256:/, '')}`;
  const arch = image.arch ? ` --arch ${image.arch}` : '';
  const file = `${view.name}_${(allTags[0] ?? 'image').replace(/[^A-Za-z0-9._-]/g, '_')}.sif`;
  return (
    <div class="pulls">
      <h4>Pull</h4>
      <Copyable label={`apptainer library pull ${image.id}`} text={`apptainer pull${arch} library://${host}/${ref}`} />
      {allTags.length > 0 && <Copyable label={`apptainer oras pull ${image.id}`} text={`apptainer pull oras://${host}/${ref}`} />}
      <Copyable label={`shelf pull ${image.id}`} text={`shelf pull${arch} ${file} library://${host}/${ref}`} />
    </div>
  );
}

function DownloadButton({ image, name }: { image: ImageDetail; name: string }) {
  const [error, setError] = useState<ApiError | null>(null);
  const download = async () => {
    try {
      const { url } = await api<{ url: string }>(`/api/browse/images/${enc(image.id)}/download`);
      location.assign(url);
    } catch (err) {
      setError(err as ApiError);
    }
  };
  return (
    <>
      <button type="button" onClick={download}>
        Download {name} ({formatSize(image.size)})
      </button>
      <ErrorNote error={error} />
    </>
  );
}

function ImageSection({ view, image }: { view: ContainerView; image: ImageDetail }) {
  const tagText = Object.entries(image.tags).map(([arch, tags]) => `${tags.join(', ')} (${arch})`);
  const title = tagText.length ? tagText.join('; ') : 'untagged';
  const labels = Object.entries(image.labels).sort(([a], [b]) => a.localeCompare(b));
  return (
    <article class="image" aria-labelledby={`img-${image.id}`}>
      <h3 id={`img-${image.id}`}>
        {title} <SignatureBadge v={image.verification} />
        {image.encrypted && <Badge kind="warn">encrypted</Badge>}
      </h3>
      <dl class="facts">
        <dt>Digest</dt>
        <dd>
          <code class="digest">{image.digest}</code>
        </dd>
        <dt>Architecture</dt>
        <dd>{image.arch ?? 'unknown'}</dd>
        <dt>Size</dt>
        <dd>{formatSize(image.size)}</dd>
        <dt>Uploaded</dt>
        <dd>
          {formatDate(image.createdAt)} by {image.uploader}
        </dd>
        <dt>Downloads</dt>
        <dd>{image.downloadCount}</dd>
        {image.description && (
          <>
            <dt>Description</dt>
            <dd>{image.description}</dd>
          </>
        )}
      </dl>
      {image.verification.signatures.length > 0 && (
        <>
          <h4>Signatures</h4>
          <ul class="signers">
            {image.verification.signatures.map((s) => (
              <li key={s.id}>
                <Badge kind={STATE_KIND[s.state]}>{STATE_TEXT[s.state]}</Badge> <code class="fingerprint">{s.fingerprint ?? 'no fingerprint'}</code>
                {s.format && <span class="meta"> ({s.format})</span>}
                {s.detail && <span class="meta"> — {s.detail}</span>}
              </li>
            ))}
          </ul>
        </>
      )}
      <PullCommands view={view} image={image} />
      <DownloadButton image={image} name={view.name} />
      {labels.length > 0 && (
        <details open>
          <summary>Labels ({labels.length})</summary>
          <div class="scroll">
            <table class="labels">
              <thead>
                <tr>
                  <th scope="col">Label</th>
                  <th scope="col">Value</th>
                </tr>
              </thead>
              <tbody>
                {labels.map(([k, v]) => (
                  <tr key={k}>
                    <th scope="row">{k}</th>
                    <td>{v}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </details>
      )}
      {image.deffile && (
        <details open>
          <summary>Definition file</summary>
          <pre class="deffile" tabIndex={0} aria-label="Definition file">
            {image.deffile}
          </pre>
        </details>
      )}
    </article>
  );
}

export function ContainerPage() {
  const { params } = useRoute();
  const { entity, collection, container } = params as { entity: string; collection: string; container: string };
  const view = useApi<ContainerView>(`/api/browse/containers/${enc(entity)}/${enc(collection)}/${enc(container)}`);
  const k = view.data;
  const archTags: Array<[string, string, ImageDetail]> = [];
  for (const image of k?.images ?? []) for (const [arch, tags] of Object.entries(image.tags)) for (const t of tags) archTags.push([arch, t, image]);
  archTags.sort((a, b) => a[0].localeCompare(b[0]) || a[1].localeCompare(b[1]));
  return (
    <section>
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href="/">Home</a> / <a href={`/library/${enc(entity)}`}>{entity}</a> / <a href={`/library/${enc(entity)}/${enc(collection)}`}>{collection}</a> / {container}
      </nav>
      <PageTitle>{`${entity}/${collection}/${container}`}</PageTitle>
      {view.loading && <Loading />}
      <ErrorNote error={view.error} />
      {k && (
        <>
          <p>
            {k.description} <PrivateBadge isPrivate={k.private || k.inheritedPrivate} /> <KindBadge kind={k.kind} />
          </p>
          {k.fullDescription && <p class="full-description">{k.fullDescription}</p>}
          <p class="meta">
            Created {formatDate(k.createdAt)} by {k.createdBy} · updated {formatDate(k.updatedAt)} · {k.downloadCount} downloads
          </p>
          {k.permissions.owner && (
            <VisibilityToggle path={[entity, collection, container].map(enc).join('/')} isPrivate={k.private} onChanged={view.reload} />
          )}
          <BuildButton fromRef={`${entity}/${collection}/${container}:${archTags.some((t) => t[1] === 'latest') ? 'latest' : (archTags[0]?.[1] ?? 'latest')}`} />
          <h2>Tags</h2>
          {archTags.length === 0 ? (
            <p>No tags.</p>
          ) : (
            <div class="scroll">
              <table class="tags">
                <thead>
                  <tr>
                    <th scope="col">Tag</th>
                    <th scope="col">Architecture</th>
                    <th scope="col">Size</th>
                    <th scope="col">Updated</th>
                    <th scope="col">Signature</th>
                  </tr>
                </thead>
                <tbody>
                  {archTags.map(([arch, tag, image]) => (
                    <tr key={`${arch}/${tag}`}>
                      <th scope="row">
                        <a href={`#img-${image.id}`}>{tag}</a>
                      </th>
                      <td>{arch}</td>
                      <td>{formatSize(image.size)}</td>
                      <td>{formatDate(image.updatedAt)}</td>
                      <td>
                        <SignatureBadge v={image.verification} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <h2>Images</h2>
          {k.images.length === 0 && <p>No uploaded images.</p>}
          {k.images.map((image) => (
            <ImageSection key={image.id} view={k} image={image} />
          ))}
        </>
      )}
    </section>
  );
}
