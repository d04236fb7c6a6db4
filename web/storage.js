// The storage fault banner (views.storageBanner): shown and hidden live from
// the "storage" event, which the hub sends on every stream when storage
// starts or stops failing. fleet.js and device.js re-dispatch it on document
// as CustomEvent "live:storage".
//
//   event: storage  data: {"ok": false, "reason": "…", "since": "<RFC 3339>"} | {"ok": true}
import { setTime } from './fleet.js';

export function initStorageBanner(doc) {
  const banner = doc.querySelector('[data-storage-banner]');
  if (!banner) return;
  doc.addEventListener('live:storage', (evt) => {
    const st = evt.detail ?? {};
    if (st.ok) {
      banner.hidden = true;
      return;
    }
    // Text first, then visible: the role="alert" region is announced with it.
    banner.querySelector('[data-storage-reason]').textContent = st.reason ?? 'writes fail';
    const since = banner.querySelector('time');
    if (since && st.since) {
      since.setAttribute('data-relative', ''); // web/time.js keeps it current from now on
      setTime(since, st.since);
    }
    banner.hidden = false;
  });
}
