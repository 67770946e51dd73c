// The label names and values the Query tab's filters and group-by offer, from the node's
// Prometheus API (`GET /api/v1/labels`, `GET /api/v1/label/<name>/values`). A node without
// that API (a 404, or any other failure) leaves the lists empty: the fields are then free
// text, and nothing is shown as an error, since the query itself does not need the lists.
import { useCallback, useEffect, useRef, useState } from 'react';
import { promList } from '../queryLabels.js';

export default function useLabelLists(client) {
  const [names, setNames] = useState([]);
  const [values, setValues] = useState({});
  const asked = useRef(new Set());

  useEffect(() => {
    const controller = new AbortController();
    client.labelNames({ signal: controller.signal })
      .then(({ data }) => setNames(promList(data, { names: true }) ?? []))
      .catch(() => setNames([]));
    return () => controller.abort();
  }, [client]);

  /** Loads the values of `name` once (later calls are no-ops); they appear in `values`. */
  const loadValues = useCallback((name) => {
    if (!name || asked.current.has(name)) return;
    asked.current.add(name);
    client.labelValues(name)
      .then(({ data }) => {
        const list = promList(data);
        if (list) setValues((v) => ({ ...v, [name]: list }));
      })
      .catch(() => { /* free text for this label */ });
  }, [client]);

  return { names, values, loadValues };
}
