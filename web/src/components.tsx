import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { ApiError } from './api.js';
import { useSession } from './session.js';

/** A command or secret with a button that copies it. */
export function Copyable({ text, label }: { text: string; label: string }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // Without clipboard access (plain http on another host), select the text for Ctrl+C.
      const el = document.getElementById(idOf(label));
      if (el) window.getSelection()?.selectAllChildren(el);
    }
    setCopied(true);
  };
  useEffect(() => {
    if (!copied) return;
    const t = setTimeout(() => setCopied(false), 2000);
    return () => clearTimeout(t);
  }, [copied]);
  return (
    <div class="copyable">
      {/* Focusable: a long command scrolls sideways, and keyboard users must be able to scroll it. */}
      <code id={idOf(label)} aria-label={label} tabIndex={0}>
        {text}
      </code>
      <button type="button" onClick={copy} aria-label={`Copy ${label}`}>
        {copied ? 'Copied' : 'Copy'}
      </button>
    </div>
  );
}

const idOf = (label: string) => `copy-${label.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;

export function Loading() {
  return <p role="status">Loading…</p>;
}

export function ErrorNote({ error }: { error: ApiError | Error | null }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {error.message}
    </p>
  );
}

export function PageTitle({ children }: { children: ComponentChildren }) {
  const text = typeof children === 'string' ? children : '';
  useEffect(() => {
    if (text) document.title = `${text} · Shelf`;
  }, [text]);
  return <h1>{children}</h1>;
}

export function Badge({ kind, children }: { kind: 'ok' | 'warn' | 'bad' | 'plain'; children: ComponentChildren }) {
  return <span class={`badge badge-${kind}`}>{children}</span>;
}

/** A badge for containers of OCI images (OCI-SIF pushed with docker://), which the Library API does not serve. */
export function KindBadge({ kind }: { kind?: 'sif' | 'oci-sif' | 'oci' }) {
  if (kind === 'oci-sif') return <Badge kind="plain">OCI-SIF</Badge>;
  if (kind === 'oci') return <Badge kind="plain">OCI image</Badge>;
  return null;
}

export function PrivateBadge({ isPrivate }: { isPrivate: boolean }) {
  return isPrivate ? <Badge kind="warn">private</Badge> : null;
}

/** A page's API error; "not found" while signed out may be private content, so it offers a sign-in. */
export function NotFoundNote({ error }: { error: ApiError }) {
  const { session } = useSession();
  if (error.status === 404 && !session) {
    return (
      <p class="error" role="alert">
        Not found. If it is private, <a href={`/signin?next=${encodeURIComponent(location.pathname)}`}>sign in</a> to see it.
      </p>
    );
  }
  return <ErrorNote error={error} />;
}
