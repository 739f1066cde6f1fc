"""
Tests for L{btorrent.peer.fast}: BEP 6's allowed-fast set.
"""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from btorrent.peer.fast import ALLOWED_FAST_SIZE, allowedFastSet

INFO_HASH = b"\xaa" * 20
#: BEP 6's vectors: 80.4.4.200, info-hash 0xAA * 20, 1313 pieces.
SEVEN = [1059, 431, 808, 1217, 287, 376, 1188]
NINE = [1059, 431, 808, 1217, 287, 376, 1188, 353, 508]


class AllowedFastSetTests(SynchronousTestCase):
    def test_bepVectors(self):
        """
        The two examples of BEP 6, in order.
        """
        self.assertEqual(allowedFastSet(7, "80.4.4.200", INFO_HASH, 1313), SEVEN)
        self.assertEqual(allowedFastSet(9, "80.4.4.200", INFO_HASH, 1313), NINE)

    def test_slash24(self):
        """
        Only the /24 of an IPv4 address counts; packed and IPv4-mapped
        addresses give the same set.
        """
        for ip in (
            "80.4.4.0",
            "80.4.4.1",
            "80.4.4.255",
            bytes([80, 4, 4, 9]),
            "::ffff:80.4.4.7",
        ):
            self.assertEqual(allowedFastSet(9, ip, INFO_HASH, 1313), NINE)
        self.assertNotEqual(allowedFastSet(9, "80.4.5.200", INFO_HASH, 1313), NINE)

    def test_dependsOnTorrent(self):
        self.assertNotEqual(allowedFastSet(9, "80.4.4.200", b"\xab" * 20, 1313), NINE)

    def test_ipv6(self):
        """
        IPv6 (which BEP 6 leaves open) keeps the /48.
        """
        a = allowedFastSet(10, "2001:db8:1::1", INFO_HASH, 1000)
        self.assertEqual(len(set(a)), 10)
        self.assertEqual(allowedFastSet(10, "2001:db8:1:ffff::2", INFO_HASH, 1000), a)
        self.assertNotEqual(allowedFastSet(10, "2001:db8:2::1", INFO_HASH, 1000), a)

    def test_smallTorrents(self):
        """
        With no more pieces than the set size every piece is allowed (the
        BEP's loop would never end).
        """
        self.assertEqual(allowedFastSet(10, "1.2.3.4", INFO_HASH, 10), list(range(10)))
        self.assertEqual(allowedFastSet(10, "1.2.3.4", INFO_HASH, 3), [0, 1, 2])
        self.assertEqual(allowedFastSet(10, "1.2.3.4", INFO_HASH, 0), [])
        self.assertEqual(allowedFastSet(0, "1.2.3.4", INFO_HASH, 100), [])

    def test_badArguments(self):
        self.assertRaises(ValueError, allowedFastSet, 7, "80.4.4.200", b"short", 1313)
        self.assertRaises(ValueError, allowedFastSet, 7, "not an address", INFO_HASH, 9)

    @given(
        k=st.integers(0, 40),
        pieces=st.integers(1, 5000),
        ip=st.ip_addresses(v=4).map(str),
    )
    def test_properties(self, k, pieces, ip):
        """
        C{min(k, pieces)} distinct valid indexes; a longer set extends a
        shorter one (in order while the BEP's loop runs; a set of every
        piece is simply all of them).
        """
        result = allowedFastSet(k, ip, INFO_HASH, pieces)
        self.assertEqual(len(result), min(k, pieces))
        self.assertEqual(len(set(result)), len(result))
        self.assertTrue(all(0 <= i < pieces for i in result))
        if k < pieces:
            longer = allowedFastSet(k + 1, ip, INFO_HASH, pieces)
            if k + 1 < pieces:
                self.assertEqual(longer[:k], result)
            else:
                self.assertLessEqual(set(result), set(longer))

    def test_defaultSize(self):
        self.assertEqual(ALLOWED_FAST_SIZE, 10)
