/**
 * The layout of an outgoing SSH binary packet under an AEAD cipher
 * (aes-gcm, RFC 5647; chacha20-poly1305, OpenSSH PROTOCOL.chacha20poly1305):
 *
 *   uint32 packet_length | byte padding_length | payload | padding | tag(16)
 *
 * packet_length counts padding_length, payload and padding; it is not part
 * of the padded length (AES-GCM sends it as associated data, chacha20 under
 * its own key), so 1 + payload + padding must be a multiple of the cipher's
 * block (16 for AES, 8 for chacha20), with at least 4 bytes of padding
 * (RFC 4253 §6).
 */

export const TAG_LEN = 16;
export const MIN_PADDING = 4;

export interface AeadPacketLayout {
  /** The padding_length byte. */
  readonly padding: number;
  /** The packet_length field. */
  readonly packetLength: number;
  /** Bytes of the whole buffer: length field, packet and tag. */
  readonly total: number;
}

export const aeadPacketLayout = (payloadLength: number, block: 8 | 16): AeadPacketLayout => {
  const unpadded = 1 + payloadLength;
  let padding = block - (unpadded % block);
  if (padding < MIN_PADDING) padding += block;
  const packetLength = unpadded + padding;
  return { padding, packetLength, total: 4 + packetLength + TAG_LEN };
};
