"""The 2.4 GHz O-QPSK PHY of IEEE 802.15.4 as the medium times it.

250 kbit/s is 62.5 ksymbol/s with 4 bits per symbol: a symbol lasts 16 us, a byte 32 us. Every
PPDU carries a synchronisation header (4 B preamble + 1 B SFD) and a 1 B PHY header (the length)
before the PSDU (the MAC frame, FCS included, at most 127 B): a full frame is 133 B = 4.256 ms.
"""

from __future__ import annotations

SYMBOL_S = 16e-6
BYTE_S = 32e-6
PHY_OVERHEAD = 6  # preamble 4 + SFD 1 + PHR 1
MAX_PSDU = 127  # aMaxPHYPacketSize
ACK_PSDU = 5  # FCF 2 + sequence 1 + FCS 2

# aTurnaroundTime: the receiver needs 12 symbols to switch to transmit before it sends the ACK.
TURNAROUND_S = 12 * SYMBOL_S
# macAckWaitDuration = aUnitBackoffPeriod (20) + aTurnaroundTime (12) + phySHRDuration (10)
# + 6 * phySymbolsPerOctet (2 * 6) = 54 symbols = 864 us: how long a sender waits for an ACK
# before it counts the attempt as failed (RIOT's submac uses the same 864 us).
ACK_WAIT_S = 54 * SYMBOL_S


def airtime(psdu_len: int) -> float:
    """Seconds on air of a PSDU of ``psdu_len`` bytes (FCS included), PHY overhead added."""
    return (PHY_OVERHEAD + psdu_len) * BYTE_S


ACK_AIRTIME_S = airtime(ACK_PSDU)  # 352 us
