import { useState } from 'preact/hooks';
import { api, ApiError } from '../api.js';

/** Runs an API change, then reloads; errors, and what was done, are shown next to the form. */
export function useAction(reload: () => void) {
  const [error, setError] = useState<ApiError | null>(null);
  const [done, setDone] = useState('');
  const run = async (fn: () => Promise<unknown>, success = '') => {
    try {
      await fn();
      setError(null);
      setDone(success);
      reload();
      return true;
    } catch (err) {
      setError(err as ApiError);
      setDone('');
      return false;
    }
  };
  return { error, run, done };
}

export function Done({ text }: { text: string }) {
  return text ? (
    <p class="notice" role="status">
      {text}
    </p>
  ) : null;
}

export const formValues = (e: Event) => {
  e.preventDefault();
  const form = e.currentTarget as HTMLFormElement;
  return { form, get: (name: string) => String(new FormData(form).get(name) ?? '').trim() };
};

/**
 * Deletes a user or group (`path`). The server refuses (409) while its entity holds containers:
 * then a second confirmation, naming how many, deletes them too (`?force=true`).
 */
export async function deleteWithEntity(path: string, name: string): Promise<void> {
  try {
    await api(path, { method: 'DELETE' });
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 409 && /still holds/.test(err.message))) throw err;
    if (!window.confirm(`${err.message}.\n\nDelete ${name} and every container in its entity? This cannot be undone.`)) throw err;
    await api(`${path}?force=true`, { method: 'DELETE' });
  }
}
