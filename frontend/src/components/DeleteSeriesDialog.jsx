// Deleting one series from the whole cluster, behind a typed confirmation: the user types
// the series name, the delete runs, and a second dialog says what happened. Mounted only
// while open, so every delete starts from an empty confirmation.
import { useState } from 'react';
import Dialog from './Dialog.jsx';

export default function DeleteSeriesDialog({ client, device, metric, onClose, onDeleted }) {
  // The series asked about when the dialog opened: the lists reload after the delete.
  const [target] = useState(() => ({ device, metric, series: `${device}/${metric}` }));
  const [stage, setStage] = useState('confirm'); // 'confirm' | 'working' | 'done'
  const [confirmText, setConfirmText] = useState('');
  const [outcome, setOutcome] = useState(null);
  const { series } = target;

  const confirm = async () => {
    setStage('working');
    try {
      const { data, node } = await client.deleteSeries(target.device, target.metric);
      setOutcome({ ok: true, deleted: data?.deleted === true, node: data?.node ?? node, series, data });
      await onDeleted();
    } catch (err) {
      setOutcome({ ok: false, series, message: err.message });
    }
    setStage('done');
  };

  if (stage === 'done' && outcome) {
    return (
      <Dialog
        key="outcome"
        open
        tone={outcome.ok ? 'success' : 'danger'}
        title={outcome.ok ? 'Series deleted' : 'Delete failed'}
        onClose={onClose}
        actions={<button type="button" className="primary" onClick={onClose} autoFocus>Close</button>}
      >
        {outcome.ok && outcome.deleted && (
          <p data-testid="delete-outcome">All data for <code>{outcome.series}</code> was deleted (node {outcome.node}).</p>
        )}
        {outcome.ok && !outcome.deleted && (
          <p data-testid="delete-outcome">
            Nothing to delete: the cluster holds no data for <code>{outcome.series}</code> (node {outcome.node}).
          </p>
        )}
        {!outcome.ok && (
          <p data-testid="delete-outcome" className="error">
            <code>{outcome.series}</code> was not deleted: {outcome.message}
          </p>
        )}
      </Dialog>
    );
  }

  const working = stage === 'working';
  return (
    <Dialog
      key="confirm"
      open
      tone="danger"
      title={`Delete ${series}?`}
      onClose={working ? undefined : onClose}
      actions={(
        <>
          <button type="button" onClick={onClose} disabled={working}>Cancel</button>
          <button
            type="button"
            className="danger"
            disabled={confirmText.trim() !== series || working}
            onClick={confirm}
          >
            {working ? 'Deleting…' : 'Delete permanently'}
          </button>
        </>
      )}
    >
      <p>
        This removes <strong>every reading</strong> of <code>{series}</code> from the whole cluster.
        It cannot be undone.
      </p>
      <label className="field">
        <span>Type <code>{series}</code> to confirm</span>
        <input
          type="text"
          value={confirmText}
          autoFocus
          autoComplete="off"
          aria-label="Confirm series name"
          onChange={(e) => setConfirmText(e.target.value)}
        />
      </label>
    </Dialog>
  );
}
