"""
The seams between btorrent's parts, as zope.interface interfaces.

Each implementation says C{@implementer(...)} and its tests check it with
L{zope.interface.verify.verifyObject}.
"""

from zope.interface import Attribute, Interface


class IPieceStorage(Interface):
    """
    Where a torrent's pieces live on disk.

    Methods are synchronous and may block on disk I/O: callers run them in
    a thread (L{btorrent.util.threads.ThreadRunner}) so the reactor
    never waits on the disk.
    """

    def open():
        """
        Create the directory tree and every file (including 0-byte files),
        sparse, without full preallocation.

        @raise StorageError: for a path outside the download directory or an
            I/O failure.
        """

    def writePiece(index, data):
        """
        Write a whole verified piece, across every file it spans.

        @param index: the piece index.
        @param data: the piece's bytes (exactly the piece's length).
        """

    def readBlock(index, begin, length):
        """
        Read C{length} bytes at C{begin} within piece C{index}.

        @return: the bytes, exactly C{length} of them (zeros for a region
            never written).
        """

    def readPiece(index):
        """
        Read a whole piece (for a recheck, or to upload).
        """

    def readPieceIfCached(index):
        """
        Read a whole piece at once if that cannot wait for the disk (it is
        in memory already), else return C{None}.  The one method safe to
        call on the reactor's thread: uploading a piece in the page cache
        then costs no thread hand-off.

        @return: the piece (a buffer), or C{None}.
        """

    def sync():
        """
        Flush written data to the disk (fsync the files written since the
        last call), so that fast-resume data written afterwards does not
        claim pieces the disk could still lose.
        """

    def close():
        """
        Close every open file.
        """


class ITrackerClient(Interface):
    """
    A client for one tracker URL (HTTP or UDP).
    """

    url = Attribute("The announce URL, as C{str}.")

    def announce(request):
        """
        Announce to the tracker.

        @param request: an C{btorrent.tracker.announce.AnnounceRequest}.
        @return: a L{Deferred} firing with an C{AnnounceResponse}, or failing
            with C{TrackerError} (the tracker's own words, a timeout, garbage).
        """

    def scrape(infoHashes):
        """
        Scrape the tracker (BEP 48).

        @param infoHashes: a list of 20-byte info-hashes.
        @return: a L{Deferred} firing with a dict mapping each info-hash to a
            C{ScrapeStats}.
        """


class IAnnounceTarget(Interface):
    """
    What an C{Announcer} needs from its torrent: the figures it reports and
    somewhere to put the peers it learns.
    """

    infoHash = Attribute("The 20-byte info-hash.")
    peerId = Attribute("Our 20-byte peer id.")
    port = Attribute("The TCP port we listen on.")
    uploaded = Attribute("Bytes uploaded this session.")
    downloaded = Attribute("Bytes of verified data downloaded this session.")
    left = Attribute("Bytes still missing.")

    def addPeers(peers):
        """
        Hand over peers learnt from a tracker.

        @param peers: an iterable of C{(host, port)} tuples, C{host} a
            C{str}; already deduplicated and without ourselves.
        """


class IPeer(Interface):
    """
    One connected peer, as a torrent's engine uses it: what its
    coordinator (the C{Downloader}), choker, requester and uploader read
    and call.  In production a L{btorrent.peer.protocol.PeerProtocol}; in
    tests, C{tests.fakes.FakePeer}.
    """

    address = Attribute("C{(host, port)} of the peer.")
    outgoing = Attribute("C{True} if we dialled it.")
    peerId = Attribute("Its 20-byte peer id.")
    amChoking = Attribute("We are choking it.")
    amInterested = Attribute("We told it we want pieces.")
    peerChoking = Attribute("It is choking us.")
    peerInterested = Attribute("It wants our pieces.")
    peerPieces = Attribute("Its pieces, a L{btorrent.codec.bitfield.Bitfield}.")
    downloadRate = Attribute("Block bytes/s from it (a meter with C{rate}).")
    uploadRate = Attribute("Block bytes/s to it (a meter with C{rate}).")
    bytesDownloaded = Attribute("Block bytes received from it.")
    bytesUploaded = Attribute("Block bytes sent to it.")
    connectedAt = Attribute("When its handshake was accepted (clock seconds).")
    fast = Attribute("Both sides offered the Fast extension (BEP 6).")
    extended = Attribute("Both sides offered BEP 10 extensions.")
    peerExtensions = Attribute("Its BEP 10 extension ids, by name.")

    def sendMessage(message):
        """
        Send one message (a value of L{btorrent.codec.wire}).
        """

    def sendHave(index):
        """
        Tell it we have piece C{index}.
        """

    def sendBitfield(bitfield):
        """
        Send our pieces (only as the first message after the handshake).

        @return: whether it was sent.
        """

    def sendRequest(index, begin, length):
        """
        Ask it for a block.
        """

    def sendCancel(index, begin, length):
        """
        Take back a request.
        """

    def sendReject(index, begin, length):
        """
        Refuse a request of its (BEP 6).
        """

    def sendPiece(index, begin, data):
        """
        Send it a block it asked for.
        """

    def sendExtended(name, payload):
        """
        Send a message of our BEP 10 extension C{name}.

        @return: whether it was sent (it speaks that extension).
        """

    def sendExtensionHandshake(fields):
        """
        Send our BEP 10 handshake (besides C{m}).

        @return: whether it was sent (it speaks BEP 10).
        """

    def choke():
        """
        Choke it.
        """

    def unchoke():
        """
        Unchoke it.
        """

    def setInterested(interested):
        """
        Tell it whether we want pieces (only when that changes).
        """

    def drop(reason):
        """
        Disconnect it, for C{reason} (one line for the log); its owner
        hears C{peerLost}.
        """


class IPeerOwner(Interface):
    """
    What a C{PeerProtocol} reports to once its handshake has been accepted:
    in practice the torrent's C{Downloader}.
    """

    def peerConnected(peer):
        """
        A peer finished the handshake for this torrent.

        @param peer: the L{btorrent.peer.protocol.PeerProtocol}.
        @return: C{True} to keep it, C{False} to refuse it (too many peers,
            a duplicate, a banned address); the protocol then disconnects.
        """

    def peerMessage(peer, message):
        """
        A decoded, validated message arrived from C{peer} (one of the
        message classes of L{btorrent.codec.wire}).
        """

    def peerBlocks(peer, blocks):
        """
        C{Piece} messages arrived from C{peer}: a list of those of one read
        (the bulk of a download), in order, each decoded and in range.  A
        message of any other kind between them is a L{peerMessage} call in
        its place in the stream.
        """

    def peerLost(peer, reason):
        """
        The connection to C{peer} closed (for any reason).
        """


class IPeerRouter(Interface):
    """
    What a C{PeerFactory} asks to route an incoming handshake by info-hash.
    """

    def ownerFor(infoHash):
        """
        @return: a L{btorrent.peer.protocol.PeerContext} (info-hash, our peer id,
            piece count, the L{IPeerOwner}) or C{None} for an info-hash we
            do not serve.
        """


class IPiecePicker(Interface):
    """
    Chooses which blocks to request from which peer.  Knows pieces and
    bitfields, never a connection: peers are named by an opaque key.
    """

    complete = Attribute("C{True} once every wanted piece is verified.")

    def addPeer(bitfield):
        """
        Count a peer's pieces in the availability.
        """

    def removePeer(bitfield):
        """
        Remove a peer's pieces from the availability.
        """

    def peerHas(index):
        """
        A peer announced piece C{index} (C{have}).
        """

    def have(index):
        """
        Piece C{index} is verified and written: never pick it again.
        """

    def pick(peerPieces, count, peerKey):
        """
        Choose up to C{count} blocks to request from a peer.

        @return: a list of C{(index, begin, length)}.
        """

    def pickAmong(indexes, peerPieces, count, peerKey):
        """
        Like L{pick}, but only free blocks of the pieces C{indexes}, in
        that order (a peer's suggestions, or its allowed-fast pieces).

        @return: a list of C{(index, begin, length)}.
        """

    def blockReceived(index, begin, peerKey):
        """
        A requested block arrived from C{peerKey}.

        @return: the keys of other peers that also had it requested (endgame),
            so that the caller can cancel them.
        """

    def abort(index, begin, peerKey):
        """
        A request to C{peerKey} will not be answered; the block is wanted
        again.
        """

    def abortPeer(peerKey):
        """
        Return every block requested from C{peerKey} to the pool.
        """

    def pieceFailed(index):
        """
        Piece C{index} failed its hash check: every block is wanted again.
        """


class IPeerExtension(Interface):
    """
    A BEP 10 extension of a torrent's peers, as the peers' owner (the
    C{Downloader}'s C{extensions}, a magnet link's metadata phase) calls
    it: by name for its messages, for every peer for the rest.
    """

    def peerConnected(peer):
        """
        A peer joined the torrent (its handshake accepted; C{peer.extended}
        says whether it speaks BEP 10).
        """

    def handshakeReceived(peer, fields):
        """
        The peer's extended handshake arrived (its ids are already in
        C{peer.peerExtensions}).

        @param fields: the decoded dictionary, keys as C{str}, values as
            bencoded (bytes, ints, lists, dicts): check every type.
        """

    def messageReceived(peer, payload):
        """
        A message of this extension arrived from C{peer} (its length within
        the extension's limit; its contents unchecked).
        """

    def peerLost(peer):
        """
        The peer is gone.
        """
