export { freePort, RedisServer, waitForPing, type RedisServerOptions } from './redis-server.ts';
export { useRedis, type RedisTestContext, type TestRedis } from './use-redis.ts';
export { pendingJobs, settled, until, type CountsJobs } from './wait.ts';
export { followPeakRss, peakRssMb } from './memory.ts';
export { nodeArgsOf } from './package-scripts.ts';
export { RedisCluster, parseClusterNodes, type ClusterNode, type RedisClusterOptions } from './redis-cluster.ts';
export { pathSpellings, rawRequest } from './path-spellings.ts';
export { useTempDirs } from './temp-dirs.ts';
