"""The baseline of the benchmarks (`invoke bench --service`, `--production`, the control of
`--serving`): the same framework and server as the agent, doing nothing. Its throughput is the
physical limit of the stack on this machine."""

from fastapi import FastAPI

app = FastAPI()


@app.post("/hello")
async def hello() -> dict[str, str]:
    return {"answer": "hello"}
