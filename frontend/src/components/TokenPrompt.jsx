// The token prompt: a modal form shown while the auth gate (src/auth.js) waits for a token,
// i.e. after a node answered 401. It cannot be dismissed: every refused request waits for it.
// Submitting stores the token for the browser session and lets those requests retry.
import { useEffect, useState, useSyncExternalStore } from 'react';
import Dialog from './Dialog.jsx';

export default function TokenPrompt({ gate }) {
  const prompt = useSyncExternalStore(gate.subscribe, gate.prompt);
  const [token, setToken] = useState('');
  const open = prompt !== null;

  // A fresh field every time the prompt opens; a refused token is not shown again.
  useEffect(() => {
    if (open) setToken('');
  }, [open, prompt?.reason]);

  if (!open) return null;

  const submit = (event) => {
    event.preventDefault();
    gate.submit(token);
  };

  return (
    <Dialog
      open
      title="Token required"
      actions={(
        <button type="submit" form="token-form" className="primary" disabled={token.trim() === ''}>
          Use token
        </button>
      )}
    >
      {prompt.reason === 'refused' ? (
        <p className="error" role="alert" data-testid="token-refused">
          Token refused{prompt.node ? ` by ${prompt.node}` : ''}
          {prompt.message ? `: ${prompt.message.replace(/\.$/, '')}` : ''}. Enter another token.
        </p>
      ) : (
        <p data-testid="token-required">
          {prompt.node ?? 'The node'} asks for an access token
          {prompt.message ? <span className="muted"> ({prompt.message})</span> : null}.
        </p>
      )}
      <form id="token-form" onSubmit={submit}>
        <label className="field">
          <span>Access token</span>
          <input
            type="password"
            value={token}
            autoFocus
            autoComplete="off"
            spellCheck={false}
            onChange={(e) => setToken(e.target.value)}
          />
        </label>
      </form>
      <p className="hint">
        Kept for this browser tab&apos;s session only (sessionStorage), and sent with every request.
      </p>
    </Dialog>
  );
}
