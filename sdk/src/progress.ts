/**
 * Progress while `waitHealthy` waits: it reports every poll (every few seconds), which is
 * too often to print; people want a line when something changes, or now and then so that a
 * long TCG boot never looks stuck.
 */

/** What `waitHealthy` reports on each poll. */
export interface WaitState {
  /** Docker's container status (`running`, `restarting`, ...). */
  status: string;
  /** The health check's status (`starting`, `healthy`, ...). */
  health: string;
  /** Seconds waited so far. */
  seconds: number;
}

/**
 * An `onProgress` for `waitHealthy` that passes a state on to `report` the first time, when
 * status or health changed, and when `everySeconds` passed since it last passed one on.
 */
export function throttleProgress(everySeconds: number, report: (state: WaitState) => void): (state: WaitState) => void {
  let last: WaitState | undefined;
  return (state) => {
    const changed = last === undefined || state.status !== last.status || state.health !== last.health;
    if (!changed && state.seconds - last!.seconds < everySeconds) return;
    last = state;
    report(state);
  };
}
