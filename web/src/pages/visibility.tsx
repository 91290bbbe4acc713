import { useState } from 'preact/hooks';
import { api, type ApiError } from '../api.js';
import { ErrorNote } from '../components.js';

/** Owners make an entity, collection or container private or public. */
export function VisibilityToggle({ path, isPrivate, onChanged }: { path: string; isPrivate: boolean; onChanged: () => void }) {
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const toggle = async () => {
    setBusy(true);
    try {
      await api(`/api/visibility/${path}`, { method: 'PUT', body: { private: !isPrivate } });
      setError(null);
      onChanged();
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="visibility">
      <span>
        Visibility: <strong>{isPrivate ? 'private' : 'public'}</strong>
      </span>{' '}
      <button type="button" onClick={toggle} disabled={busy}>
        {isPrivate ? 'Make public' : 'Make private'}
      </button>
      <ErrorNote error={error} />
    </div>
  );
}
