from tests.server import run_server


async def test_healthz_and_readyz_answer_on_a_real_socket(db_url):
    async with run_server(db_url) as srv, srv.client() as http:
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["database"] == "ok"


async def test_the_inbox_page_is_served_and_speaks_the_public_api(db_url):
    async with run_server(db_url) as srv, srv.client() as http:
        page = await http.get("/inbox")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert '<script type="module" src="/static/inbox.js">' in page.text
        script = (await http.get("/static/inbox.js")).text
        assert "/api/v1/conversations" in script and 'from "./stream.js"' in script
        stream = await http.get("/static/stream.js")
        assert "/ws`" in stream.text and stream.headers["content-type"].startswith("text/javascript")
        assert (await http.get("/static/list_view.js")).status_code == 200
        # Only the files the page is made of: nothing else under (or above) static/.
        for name in ("nope_view.js", "..%2Finbox_page.py", "inbox.html"):
            assert (await http.get(f"/static/{name}")).status_code == 404, name
        assert (await http.get("/", follow_redirects=False)).headers["location"] == "/inbox"
