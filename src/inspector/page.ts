/**
 * The page a person opens: it embeds the inspector UI and bridges it to the relay's socket.
 */

export const DEFAULT_UI_URL = 'https://stately.ai/inspect';
/** Messages the relay replays to a late page, and the page keeps before its UI frame is ready. */
export const REPLAY_MAX_MESSAGES = 200;

function escapeHtmlAttribute(value: string): string {
  return value.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

export function parseUiUrl(uiUrl: string): string {
  const parsed = new URL(uiUrl);
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new TypeError(`inspector UI URL must be http(s): ${uiUrl}`);
  }
  return parsed.href;
}

/**
 * Like the stock bridge, but the relay socket is same-origin with the token, messages go only to
 * the origin the UI frame announced itself from, and no referrer (which would carry the token)
 * is sent to the UI's host.
 */
export function pageHtml(socketUrl: string, uiUrl: string): string {
  // The socket URL is ours (127.0.0.1, a number, base64url); "<" is escaped regardless so the
  // literal can never close the script element.
  const socketLiteral = JSON.stringify(socketUrl).replace(/</g, '\\u003c');
  return `<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <meta name="referrer" content="no-referrer">
  <title>Charter daemon inspector</title>
  <style>
    * { margin: 0; padding: 0; }
    html, body { height: 100%; }
    iframe { width: 100%; height: 100%; border: none; }
  </style>
</head>
<body>
  <iframe id="inspector" referrerpolicy="no-referrer" src="${escapeHtmlAttribute(uiUrl)}"></iframe>
  <script>
    const iframe = document.getElementById('inspector');
    const buffer = [];
    let uiOrigin = null;

    window.addEventListener('message', (e) => {
      if (e.source !== iframe.contentWindow) return;
      if (e.data && e.data.type === '@statelyai.connected') {
        uiOrigin = e.origin;
        for (const data of buffer) iframe.contentWindow.postMessage(data, uiOrigin);
        buffer.length = 0;
      }
    });

    const ws = new WebSocket(${socketLiteral});
    ws.onmessage = (event) => {
      let data;
      try { data = JSON.parse(event.data); } catch { return; }
      if (uiOrigin !== null) {
        iframe.contentWindow.postMessage(data, uiOrigin);
      } else {
        buffer.push(data);
        if (buffer.length > ${REPLAY_MAX_MESSAGES}) buffer.shift();
      }
    };
  </script>
</body>
</html>`;
}
