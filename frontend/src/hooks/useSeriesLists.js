// The device and metric lists the query form picks a series from, loaded from the cluster
// (`/devices`, `/metrics?device_id=`), with the current choice kept when it still exists.
import { useCallback, useEffect, useState } from 'react';

/** `initial`: `{ device, metric }` to choose once the lists hold them (a shared query link). */
export default function useSeriesLists(client, initial = null) {
  const [devices, setDevices] = useState([]);
  const [device, setDevice] = useState(initial?.device ?? '');
  const [metrics, setMetrics] = useState([]);
  const [metric, setMetric] = useState(initial?.metric ?? '');
  const [listError, setListError] = useState('');

  const loadDevices = useCallback(async () => {
    setListError('');
    try {
      const { data } = await client.devices();
      const list = Array.isArray(data?.devices) ? [...data.devices].sort() : [];
      setDevices(list);
      setDevice((current) => (list.includes(current) ? current : (list[0] ?? '')));
    } catch (err) {
      setDevices([]);
      setListError(`Could not load devices: ${err.message}`);
    }
  }, [client]);

  const loadMetrics = useCallback(async (deviceId) => {
    if (!deviceId) {
      setMetrics([]);
      setMetric('');
      return;
    }
    try {
      const { data } = await client.metrics(deviceId);
      const list = Array.isArray(data?.metrics) ? [...data.metrics].sort() : [];
      setMetrics(list);
      setMetric((current) => (list.includes(current) ? current : (list[0] ?? '')));
    } catch (err) {
      setMetrics([]);
      setMetric('');
      setListError(`Could not load metrics for ${deviceId}: ${err.message}`);
    }
  }, [client]);

  useEffect(() => {
    loadDevices();
  }, [loadDevices]);

  useEffect(() => {
    loadMetrics(device);
  }, [device, loadMetrics]);

  /** Loads both lists again (after a delete, say). */
  const reload = useCallback(async () => {
    await loadDevices();
    await loadMetrics(device);
  }, [device, loadDevices, loadMetrics]);

  return { devices, device, setDevice, metrics, metric, setMetric, listError, loadDevices, reload };
}
