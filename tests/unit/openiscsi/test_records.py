"""Where open-iscsi keeps a record's file (the layout seen in the test VM, open-iscsi 2.1.8:
``nodes/<target>/<address>,<port>,<tpgt>/<iface>``, ``send_targets/<address>,<port>/st_config``)."""

import pytest

from saltext_win_iscsi.errors import IscsiError
from saltext_win_iscsi.openiscsi.records import discovery_file, folder_portal, record_file

TARGET = "iqn.2003-01.org.example:scratch"


@pytest.mark.parametrize(
    ("name", "portal"),
    [
        ("127.0.0.1,3260,1", ("127.0.0.1", 3260)),
        ("127.0.0.1,3260", ("127.0.0.1", 3260)),
        ("fe80::1,3260,1", ("fe80::1", 3260)),
        ("st_config", None),
        ("127.0.0.1,x,1", None),
        (",3260,1", None),
    ],
)
def test_folder_names_give_their_portal(name, portal):
    assert folder_portal(name) == portal


def test_the_record_and_discovery_files_are_found_where_open_iscsi_writes_them(tmp_path):
    record = tmp_path / "nodes" / TARGET / "127.0.0.1,3260,1" / "default"
    record.parent.mkdir(parents=True)
    record.write_text("node.startup = manual\n")
    old_style = tmp_path / "nodes" / TARGET / "127.0.0.2,3260,1"  # the folder is the file
    old_style.write_text("node.startup = manual\n")
    discovery = tmp_path / "send_targets" / "127.0.0.1,3260" / "st_config"
    discovery.parent.mkdir(parents=True)
    discovery.write_text("discovery.startup = manual\n")
    nodes = (str(tmp_path / "nodes"),)
    assert record_file(nodes, TARGET, "127.0.0.1", 3260, "default") == record
    assert record_file(nodes, TARGET, "127.0.0.2", 3260, "default") == old_style
    assert discovery_file(nodes, "127.0.0.1", 3260) == discovery
    with pytest.raises(IscsiError, match="no node record file for .* at 127.0.0.1:3261"):
        record_file(nodes, TARGET, "127.0.0.1", 3261, "default")
