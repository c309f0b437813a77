"""The controller's render cache (bars_receiver/render_cache.py): a recorded entry lets an
unchanged run skip rendering, but only while the file on disk is what was recorded; any input,
template or code change gives another key; a dry run writes no entry."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyinfra.context import ctx_host

from bars_receiver import render_cache, request_packs as request_pack
from bars_receiver.certificates.x509 import sha256_hex
from bars_receiver.nginx.config import config_key
from bars_receiver.request_packs import note_key, note_template, pack_current, request_packs

from .test_request_pack_operations import (  # noqa: F401
    FakeHost, collect, execute, host_state, packs_op, plan, receiver,
)
from .test_scale_500 import sites


def test_record_and_read_back(tmp_path, monkeypatch):
    assert render_cache.rendered_sha256(str(tmp_path), "k") is None
    render_cache.record(str(tmp_path), "k", "ab" * 32)
    assert render_cache.rendered_sha256(str(tmp_path), "k") == "ab" * 32
    monkeypatch.setattr(render_cache, "is_dry", lambda: True)
    render_cache.record(str(tmp_path), "other", "cd" * 32)
    assert render_cache.rendered_sha256(str(tmp_path), "other") is None
    assert sorted(p.name for p in (tmp_path / ".cache" / "render").iterdir()) == ["k"]


def test_nginx_key_follows_sites_settings_and_template(receiver):  # noqa: F811
    base = config_key(receiver, sites(receiver))
    assert config_key(receiver, sites(receiver)) == base
    assert config_key(receiver, []) != base
    changed = receiver.model_copy(update={"settings": receiver.settings.model_copy(update={"upstream_timeout": 7})})
    assert config_key(changed, sites(receiver)) != base
    template = Path(receiver.project_dir) / "files" / "templates" / "nginx-receiver.conf.j2"
    template.write_text(template.read_text() + "# changed\n")
    render_cache._source.cache_clear()
    assert config_key(receiver, sites(receiver)) != base


def test_a_recorded_pack_is_current_only_while_its_files_are_unchanged(receiver, monkeypatch):  # noqa: F811
    endpoint = receiver.endpoints[0]
    state = host_state(endpoint.fqdn)
    execute(collect(request_packs, **packs_op(receiver, plan(receiver, endpoint, state=state)))[0])
    with ctx_host.use(FakeHost()):
        assert pack_current(receiver, endpoint, state)  # checked and rendered once: recorded
    key = note_key(receiver.project_dir, note_template(receiver), plan(receiver, endpoint), state.csr_pem,
                   state.key_public_pem)
    note = Path(receiver.requests_dir) / f"{endpoint.fqdn}.md"
    assert render_cache.rendered_sha256(receiver.project_dir, key) == sha256_hex(note.read_bytes())

    def no_render(*args, **kwargs):
        raise AssertionError("rendered although the recorded entry matched")

    monkeypatch.setattr(request_pack, "render_note", no_render)
    with ctx_host.use(FakeHost()):
        assert pack_current(receiver, endpoint, state)
    note.write_text(note.read_text() + "edited by hand\n")
    monkeypatch.undo()
    with ctx_host.use(FakeHost()):
        assert not pack_current(receiver, endpoint, state)  # the note differs: rendered, and not current


@pytest.mark.parametrize("renewal", [False, True])
def test_pack_key_follows_its_inputs(receiver, renewal):  # noqa: F811
    endpoint = receiver.endpoints[0]
    state, other = host_state(endpoint.fqdn), host_state(endpoint.fqdn)
    template = note_template(receiver)

    def key(pack, state=state, template=template):
        return note_key(receiver.project_dir, template, pack, state.csr_pem, state.key_public_pem)

    pack = plan(receiver, endpoint, renewal=renewal)
    assert key(pack) == key(plan(receiver, endpoint, renewal=renewal))
    assert key(pack) != key(plan(receiver, endpoint, renewal=not renewal))
    assert key(pack) != key({**pack, "note": {**pack["note"], "host_name": "h2"}})
    assert key(pack) != key({**pack, "stem": pack["stem"] + "@h2"})
    changed = receiver.model_copy(update={"settings": receiver.settings.model_copy(update={"bars_team_email": "x@nhs.net"})})
    assert key(pack) != key(plan(changed, endpoint, renewal=renewal))
    assert key(pack) != key(pack, state=other)
    assert key(pack) != key(pack, template="request-dir.md.j2")


