from inbox.accounts import authenticate, create_account


async def test_a_fresh_database_is_migrated_and_accepts_an_account(pool):
    account_id, key = await create_account(pool, "acme")
    principal = await authenticate(pool, key)
    assert principal is not None and principal.account_id == account_id
    assert await authenticate(pool, key + "x") is None
