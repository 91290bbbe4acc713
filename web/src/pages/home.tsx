import { useLocation } from 'preact-iso';
import { useApi } from '../api.js';
import { ErrorNote, Loading, PageTitle } from '../components.js';
import { ContainerList, type ContainerSummary } from './listing.js';

export function Home() {
  const recent = useApi<{ items: ContainerSummary[]; next: string | null }>('/api/browse/recent?limit=20');
  const { route } = useLocation();
  return (
    <section>
      <PageTitle>Shelf container library</PageTitle>
      <form
        class="hero-search"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          const q = new FormData(e.currentTarget).get('q')?.toString().trim();
          if (q) route(`/search?q=${encodeURIComponent(q)}`);
        }}
      >
        <label for="home-search">Find a container by name, description or digest</label>
        <div class="row">
          <input id="home-search" name="q" type="search" required />
          <button type="submit">Search</button>
        </div>
      </form>
      <p>
        <a href="/search">Browse all containers</a> (filter by architecture and signature)
      </p>
      <h2>Recently pushed</h2>
      {recent.loading ? <Loading /> : <ErrorNote error={recent.error} />}
      {recent.data && <ContainerList items={recent.data.items} empty="No containers yet. Push one with apptainer push." />}
    </section>
  );
}
