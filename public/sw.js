// canary's service worker: shows the alerts the server pushes (Web Push)
// while no console is open, and opens the console when one is tapped.
// Plain JavaScript: a service worker starts without the console's
// WebAssembly. Served unhashed at /admin/canary/sw.js, so its scope is the
// console's own path (under server.path_prefix too).
'use strict';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

// The server sends {title, body, tag, url, event}; anything else is still
// shown, so an alert is never swallowed.
function readAlert(data) {
  try {
    const alert = data ? data.json() : null;
    if (alert && typeof alert.title === 'string') return alert;
  } catch (_) {
    // Not JSON: shown as text below.
  }
  return { title: 'canary', body: data ? data.text() : 'The rollout changed.', tag: 'canary', url: './' };
}

self.addEventListener('push', (event) => {
  const alert = readAlert(event.data);
  const urgent = alert.event === 'breach' || alert.event === 'rolled_back';
  const scope = self.registration.scope;
  // Inside waitUntil: a browser may stop a worker (and count the push as
  // silent) once the handler returns.
  event.waitUntil(
    self.registration.showNotification(alert.title, {
      body: alert.body || '',
      tag: alert.tag || 'canary',
      // A newer breach alerts again even though it replaces the older one.
      renotify: urgent,
      requireInteraction: urgent,
      icon: new URL('icon-192.png', scope).href,
      data: { url: new URL(alert.url || './', scope).href },
    }),
  );
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const target = (event.notification.data && event.notification.data.url) || self.registration.scope;
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
      const open = windows.find((client) => client.url.startsWith(self.registration.scope));
      if (open) {
        await open.focus();
        return;
      }
      await self.clients.openWindow(target);
    })(),
  );
});

// A browser renews a subscription now and then; the server is told at once,
// or it would learn only from the push service's 410 at the next alert.
self.addEventListener('pushsubscriptionchange', (event) => {
  event.waitUntil(
    (async () => {
      const old = event.oldSubscription;
      const key = old && old.options ? old.options.applicationServerKey : null;
      const fresh =
        event.newSubscription ||
        (key ? await self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }) : null);
      if (!fresh) return;
      const body = fresh.toJSON();
      if (old) body.replaces = old.endpoint;
      await fetch(new URL('push/devices', self.registration.scope), {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    })(),
  );
});
