/** The client asked us to exit (MSG_ERROR_EXIT, protocol >= 31). */
export class PeerExitSignal extends Error {
  constructor(readonly code: number) {
    super(`peer requested exit ${code}`);
  }
}
