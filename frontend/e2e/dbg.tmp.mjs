import { startCluster, api } from './cluster.mjs';
const c = await startCluster();
const sleep = ms => new Promise(r => setTimeout(r, ms));
try {
  await sleep(3000);
  const now = Math.floor(Date.now()/1000);
  const q = (port, body) => api(port, '/query', body).then(r => JSON.stringify(r.data));
  const base = { device_id: 'sensor_1', metric_name: 'temperature', operation: 'avg' };
  console.log('all', await q(8080, { ...base, start_time: 0, end_time: 0 }));
  console.log('hour', await q(8080, { ...base, start_time: now - 3600, end_time: now }));
  console.log('hour+5', await q(8080, { ...base, start_time: now - 3600, end_time: now + 5 }));
  console.log('samples', JSON.stringify((await api(8080, '/query-samples', { ...base, start_time: 0, end_time: 0 })).data).slice(0, 300));
  console.log('now', now, Date.now()/1000);
  // delete check
  await c.stopSimulator();
  await sleep(1500);
  const hb = { device_id: 'sensor_3', metric_name: 'humidity', operation: 'count', start_time: 0, end_time: 0 };
  for (const p of [8080, 8081, 8082]) console.log('before', p, await q(p, hb));
  for (const p of [8080, 8081, 8082]) console.log('local', p, JSON.stringify((await api(p, '/query?local=1', hb)).data));
  console.log('delete', JSON.stringify((await api(8080, '/delete', { device_id: 'sensor_3', metric_name: 'humidity' })).data));
  for (const p of [8080, 8081, 8082]) console.log('after', p, await q(p, hb));
  for (const p of [8080, 8081, 8082]) console.log('local', p, JSON.stringify((await api(p, '/query?local=1', hb)).data));
  await sleep(3000);
  for (const p of [8080, 8081, 8082]) console.log('after3s', p, await q(p, hb));
  for (const p of [8080, 8081, 8082]) console.log('status', p, JSON.stringify((await api(p, '/status')).data).slice(0, 600));
} finally { await c.stop(); }
