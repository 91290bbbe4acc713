import { useState } from 'preact/hooks';
import { api, type ApiError } from '../api.js';
import { ErrorNote } from '../components.js';

/** The description of an entity, collection or container; its owners edit it in place. */
export function Description({ path, text, canEdit, onChanged }: { path: string; text: string; canEdit: boolean; onChanged: () => void }) {
  const [editing, setEditing] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [saved, setSaved] = useState(false);
  // What was saved shows at once: the page's own copy of the text arrives with its reload.
  const [savedText, setSavedText] = useState<string | null>(null);
  const shown = saved && savedText !== null ? savedText : text;
  if (!editing) {
    return (
      <div class="description">
        {shown ? <p>{shown}</p> : <p class="meta">No description.</p>}
        {saved && <p role="status">Description saved.</p>}
        {canEdit && (
          <button type="button" onClick={() => (setEditing(true), setSaved(false))}>
            Edit description
          </button>
        )}
      </div>
    );
  }
  const save = async (e: Event) => {
    e.preventDefault();
    const value = new FormData(e.currentTarget as HTMLFormElement).get('description')?.toString() ?? '';
    try {
      await api(`/api/descriptions/${path}`, { method: 'PUT', body: { description: value } });
      setError(null);
      setEditing(false);
      setSavedText(value.trim());
      setSaved(true);
      onChanged();
    } catch (err) {
      setError(err as ApiError);
    }
  };
  return (
    <form class="description stack" onSubmit={save}>
      <label for="description-text">Description</label>
      <textarea id="description-text" name="description" rows={3} maxLength={4096} defaultValue={shown} />
      <div class="row">
        <button type="submit">Save description</button>
        <button type="button" onClick={() => setEditing(false)}>
          Cancel
        </button>
      </div>
      <ErrorNote error={error} />
    </form>
  );
}
