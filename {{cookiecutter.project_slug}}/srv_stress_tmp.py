import asyncio, time, faulthandler, sys
faulthandler.dump_traceback_later(15, exit=True)
import asyncio, tracemalloc, warnings, gc
tracemalloc.start()
warnings.simplefilter("error")
import asyncpg, redis.asyncio
from tests.servers import postgres_server, redis_server
from tests.faults import FaultProxy

async def main(pg):
    async with FaultProxy.for_url(pg.url) as proxy:
        url = proxy.url_for(pg.url)
        pool = await asyncpg.create_pool(url, min_size=30, max_size=30)
        t = time.monotonic()
        r = await asyncio.gather(*[pool.fetchval("select pg_sleep(0.05), 1") for _ in range(300)])
        print("300 queries", round(time.monotonic() - t, 3))
        proxy.latency(0.02, jitter=0.01)
        t = time.monotonic()
        await asyncio.gather(*[pool.fetchval("select 1") for _ in range(300)])
        print("300 queries w/ latency", round(time.monotonic() - t, 3))
        proxy.reset()
        res = await asyncio.gather(*[pool.fetchval("select 1") for _ in range(30)], return_exceptions=True)
        print("after reset", {type(x).__name__ for x in res})
        proxy.pass_through()
        res = await asyncio.gather(*[pool.fetchval("select 1") for _ in range(30)], return_exceptions=True)
        print("after pass", {type(x).__name__ for x in res})
        proxy.blackhole()
        res = await asyncio.gather(*[asyncio.wait_for(pool.fetchval("select 1"), 0.3) for _ in range(5)], return_exceptions=True)
        print("blackhole", {type(x).__name__ for x in res})
        proxy.down()
        try:
            await asyncpg.connect(url, timeout=1)
        except Exception as e:
            print("down:", type(e).__name__)
        proxy.up()
        c = await asyncpg.connect(url, timeout=2); print("up", await c.fetchval("select 1")); await c.close()
        pool.terminate()
        # leave something blackholed at stop
        proxy.blackhole()
        r2 = redis.asyncio.Redis.from_url(url.replace("postgresql", "redis"))
        _ = asyncio.create_task(asyncpg.connect(url, timeout=5))
        await asyncio.sleep(0.1)
    print("proxy stopped, links:", len(proxy._links))
    _.cancel()
    try: await _
    except BaseException as e: print("pending connect:", type(e).__name__)
    await r2.aclose()

pg = postgres_server()
try:
    asyncio.run(main(pg))
finally:
    pg.close()
gc.collect()
print("ok")
