from tests.server import run_server


async def test_healthz_and_readyz_answer_on_a_real_socket(db_url):
    async with run_server(db_url) as srv, srv.client() as http:
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["database"] == "ok"
