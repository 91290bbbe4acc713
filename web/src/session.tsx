import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Session } from './api.js';

export interface SessionState {
  session: Session | null;
  setSession: (s: Session | null) => void;
}

export const SessionContext = createContext<SessionState>({ session: null, setSession: () => {} });
export const useSession = () => useContext(SessionContext);
