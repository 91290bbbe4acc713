import { useState } from 'preact/hooks';
import { useRoute } from 'preact-iso';
import { api, enc, formatDate, formatSize, useApi, type ApiError } from '../api.js';
import { Badge, Copyable, ErrorNote, KindBadge, Loading, NotFoundNote, PageTitle, PrivateBadge } from '../components.js';
import { useSession } from '../session.js';
import { Description } from './description.js';
import { VisibilityToggle } from './visibility.js';
import { BuildButton } from './builds.js';
import { LockBadge, PolicyPanel, isImmutable, type PolicyView } from './policy.js';

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
  manifestDigest: string | null;
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
  ownDescription: string;
  fullDescription: string;
  private: boolean;
  inheritedPrivate: boolean;
  privateVia: 'entity' | 'collection' | null;
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

/** The file Apptainer would write for a tag (`CONTAINER_TAG.sif`), used for every command and the download. */
export const fileName = (container: string, tag: string | null) => `${container}_${(tag ?? 'image').replace(/[^A-Za-z0-9._-]/g, '_')}.sif`;

interface PullChoice {
  tag: string;
  arch: string;
  image: ImageDetail;
  /** The tag points at images of several architectures: its OCI tag is an index. */
  multiArch: boolean;
}

/**
 * Commands that work when pasted: plain-HTTP servers need `--no-https` (Apptainer) and a remote
 * (shelf); an index tag is pulled by its architecture's manifest digest for Apptainer 1.0–1.2.
 */
export function pullCommands(view: { entity: string; collection: string; name: string; private: boolean }, choice: PullChoice, where: { host: string; plain: boolean }) {
  const { host, plain } = where;
  const path = `${view.entity}/${view.collection}/${view.name}`;
  const file = fileName(view.name, choice.tag);
  const noHttps = plain ? ' --no-https' : '';
  const arch = ` --arch ${choice.arch}`;
  const lines: Array<{ label: string; text: string; note?: string }> = [];
  if (view.private) {
    lines.push({ label: 'apptainer registry login', text: `apptainer registry login --username YOUR_NAME oras://${host}`, note: 'Private: sign in first (password: an access token).' });
  }
  lines.push({ label: 'apptainer pull library', text: `apptainer pull${noHttps}${arch} ${file} library://${host}/${path}:${choice.tag}` });
  if (choice.multiArch) {
    lines.push({ label: 'apptainer pull oras', text: `apptainer pull${noHttps}${arch} ${file} oras://${host}/${path}:${choice.tag}`, note: 'Apptainer 1.3 or later.' });
    if (choice.image.manifestDigest) {
      lines.push({ label: 'apptainer pull oras by digest', text: `apptainer pull${noHttps} ${file} oras://${host}/${path}@${choice.image.manifestDigest}`, note: `Apptainer 1.0–1.2 (${choice.arch} manifest).` });
    }
  } else {
    lines.push({ label: 'apptainer pull oras', text: `apptainer pull${noHttps}${arch} ${file} oras://${host}/${path}:${choice.tag}` });
  }
  if (plain) lines.push({ label: 'shelf remote add', text: `shelf remote add shelf http://${host}`, note: 'Once, for shelf: this server speaks plain HTTP.' });
  if (view.private) lines.push({ label: 'shelf remote login', text: `shelf remote login ${plain ? 'shelf' : ''}`.trim() + ' --token-stdin', note: undefined });
  lines.push({ label: 'shelf pull', text: `shelf pull${arch} ${file} library://${host}/${path}:${choice.tag}` });
  return lines;
}

function PullBox({ view, choices }: { view: ContainerView; choices: PullChoice[] }) {
  const [index, setIndex] = useState(0);
  const choice = choices[Math.min(index, choices.length - 1)]!;
  const { session } = useSession();
  const lines = pullCommands({ ...view, private: view.private || view.inheritedPrivate }, choice, { host: location.host, plain: location.protocol === 'http:' });
  return (
    <section class="pulls" aria-labelledby="pull-heading">
      <h2 id="pull-heading">Pull</h2>
      {choices.length > 1 && (
        <p>
          <label for="pull-tag">Tag and architecture</label>{' '}
          <select id="pull-tag" value={String(index)} onChange={(e) => setIndex(Number(e.currentTarget.value))}>
            {choices.map((c, i) => (
              <option key={`${c.tag}/${c.arch}`} value={String(i)}>
                {c.tag} ({c.arch})
              </option>
            ))}
          </select>
        </p>
      )}
      {(view.private || view.inheritedPrivate) && (
        <p class="meta">
          This container is private: the commands need a token of an account that may read it{session ? '' : <> (<a href="/signin">sign in</a>, then create one)</>} — <a href="/tokens">access tokens</a>.
        </p>
      )}
      {lines.map((l) => (
        <div key={l.label}>
          {l.note && <p class="meta">{l.note}</p>}
          <Copyable label={l.label} text={l.text} />
        </div>
      ))}
      <DownloadButton image={choice.image} file={fileName(view.name, choice.tag)} />
    </section>
  );
}

function DownloadButton({ image, file }: { image: ImageDetail; file: string }) {
  const [error, setError] = useState<ApiError | null>(null);
  const download = async () => {
    try {
      const { url } = await api<{ url: string }>(`/api/browse/images/${enc(image.id)}/download?filename=${enc(file)}`);
      location.assign(url);
    } catch (err) {
      setError(err as ApiError);
    }
  };
  return (
    <>
      <button type="button" onClick={download}>
        Download {file} ({formatSize(image.size)})
      </button>
      <ErrorNote error={error} />
    </>
  );
}

function ImageSection({ image }: { image: ImageDetail }) {
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
            {image.verification.signatures.map((s, i) => {
              const fingerprint = s.fingerprint ?? image.fingerprints[i] ?? null;
              const dsse = (s.format ?? '').toLowerCase().includes('dsse');
              return (
                <li key={s.id}>
                  <Badge kind={STATE_KIND[s.state]}>{STATE_TEXT[s.state]}</Badge>{' '}
                  {fingerprint ? <code class="fingerprint">{fingerprint}</code> : <span class="meta">{dsse ? 'DSSE signature (keys are not kept on a keyserver)' : 'signer not named'}</span>}
                  {s.format && <span class="meta"> ({s.format})</span>}
                  {s.state === 'unknown-key' && !dsse && fingerprint && (
                    <p class="meta">
                      To make it verify, the signer adds the public key to this server's keyserver:{' '}
                      <code>apptainer key push {fingerprint}</code> (with this server as the remote in use), or{' '}
                      <code>shelf key push KEY.asc --keyserver {location.origin}</code>.
                    </p>
                  )}
                  {s.state === 'unknown-key' && dsse && <p class="meta">Shelf cannot check DSSE signatures without the signer's key: the image is stored as signed, not verified.</p>}
                  {s.state === 'invalid' && s.detail && <p class="meta">{s.detail}</p>}
                </li>
              );
            })}
          </ul>
        </>
      )}
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
  archTags.sort((a, b) => a[1].localeCompare(b[1]) || a[0].localeCompare(b[0]));
  const arches = (tag: string) => archTags.filter(([, t]) => t === tag).length;
  // Pull choices: "latest" first, then the other tags, each architecture once.
  const choices: PullChoice[] = archTags
    .map(([arch, tag, image]) => ({ tag, arch, image, multiArch: arches(tag) > 1 }))
    .sort((a, b) => Number(b.tag === 'latest') - Number(a.tag === 'latest'));
  const path = [entity, collection, container].map(enc).join('/');
  const policy = useApi<PolicyView>(`/api/policies/${path}`);
  const effective = policy.data?.effective;
  return (
    <section>
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href="/">Home</a> / <a href={`/library/${enc(entity)}`}>{entity}</a> / <a href={`/library/${enc(entity)}/${enc(collection)}`}>{collection}</a> / {container}
      </nav>
      <PageTitle>{`${entity}/${collection}/${container}`}</PageTitle>
      {view.loading && <Loading />}
      {view.error && <NotFoundNote error={view.error} />}
      {k && (
        <>
          <PrivateBadge isPrivate={k.private || k.inheritedPrivate} /> <KindBadge kind={k.kind} />
          <Description path={path} text={k.description} canEdit={k.permissions.owner} onChanged={view.reload} />
          {k.fullDescription && <p class="full-description">{k.fullDescription}</p>}
          <p class="meta">
            Created {formatDate(k.createdAt)} by {k.createdBy} · last pushed {formatDate(k.updatedAt)} · {k.downloadCount} downloads
          </p>
          <CacheOrigin path={path} />
          <VisibilityNote view={k} path={path} onChanged={view.reload} />
          {choices.length > 0 && <PullBox view={k} choices={choices} />}
          <BuildButton fromRef={`${entity}/${collection}/${container}:${archTags.some((t) => t[1] === 'latest') ? 'latest' : (archTags[0]?.[1] ?? 'latest')}`} />
          <PolicyPanel path={path} policy={policy} canEdit={k.permissions.owner} />
          <h2>Tags</h2>
          {archTags.length === 0 ? (
            <p>No tags.</p>
          ) : (
            <table class="tags stacked">
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
                      <a href={`#img-${image.id}`}>{tag}</a> {isImmutable(effective, tag) && <LockBadge />}
                    </th>
                    <td data-label="Architecture">{arch}</td>
                    <td data-label="Size">{formatSize(image.size)}</td>
                    <td data-label="Updated">{formatDate(image.updatedAt)}</td>
                    <td data-label="Signature">
                      <SignatureBadge v={image.verification} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <h2>Images</h2>
          {k.images.length === 0 && <p>No uploaded images.</p>}
          {k.images.map((image) => (
            <ImageSection key={image.id} image={image} />
          ))}
        </>
      )}
    </section>
  );
}

/** Where the pull-through cache fetched this container from; nothing for pushed content or without a cache. */
function CacheOrigin({ path }: { path: string }) {
  const origin = useApi<{ origin: { upstream: string; fetchedAt: string } | null }>(`/api/cache/origin/${path}`).data?.origin;
  if (!origin) return null;
  return (
    <p class="cache-origin">
      Cached from <code>{origin.upstream}</code>, last fetched {formatDate(origin.fetchedAt)}. Pushes here are refused; the upstream's tags are asked again after their TTL.
    </p>
  );
}

/** Effective visibility: a container in a private collection or entity is private, whatever its own setting. */
function VisibilityNote({ view, path, onChanged }: { view: ContainerView; path: string; onChanged: () => void }) {
  if (view.privateVia) {
    const where = view.privateVia === 'entity' ? `the entity ${view.entity}` : `the collection ${view.entity}/${view.collection}`;
    return (
      <p class="visibility">
        Visibility: <strong>private</strong>, because {where} is private.
        {view.permissions.owner && ` Its own setting (${view.private ? 'private' : 'public'}) applies once ${where} is public.`}
      </p>
    );
  }
  return view.permissions.owner ? <VisibilityToggle path={path} isPrivate={view.private} onChanged={onChanged} /> : null;
}
