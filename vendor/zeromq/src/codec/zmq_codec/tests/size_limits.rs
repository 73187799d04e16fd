use super::*;

fn limited(max_frame_size: usize, max_message_size: usize) -> ZmqCodec {
    let mut options = SocketOptions::default();
    options.max_message_size(max_frame_size, max_message_size);
    let mut codec = ZmqCodec::with_options(&options);
    codec.state = DecoderState::FrameHeader;
    codec.waiting_for = 1;
    codec
}

fn long_header(more: bool, len: u64) -> BytesMut {
    let mut input = BytesMut::from(&[0b0000_0010 | u8::from(more)][..]);
    input.extend_from_slice(&len.to_be_bytes());
    input
}

#[test]
fn a_frame_declaring_a_terabyte_is_refused_before_anything_is_reserved() {
    let mut codec = limited(1 << 20, 16 << 20);
    let mut input = long_header(false, 1 << 40);
    let capacity = input.capacity();
    let error = codec.decode(&mut input).expect_err("refused");
    assert!(matches!(error, CodecError::Decode(_)), "{error:?}");
    assert!(
        input.capacity() <= capacity,
        "nothing reserved for the frame"
    );
}

#[test]
fn frames_up_to_the_limit_pass_and_one_byte_more_is_refused() {
    let mut codec = limited(1000, 4000);
    let mut input = long_header(false, 1000);
    input.resize(input.len() + 1000, 7);
    match codec.decode(&mut input).unwrap() {
        Some(Message::Message(m)) => assert_eq!(m.get(0).unwrap().len(), 1000),
        other => panic!("unexpected {other:?}"),
    }
    let mut input = long_header(false, 1001);
    assert!(codec.decode(&mut input).is_err());
}

#[test]
fn the_parts_of_a_message_add_up_against_the_message_limit() {
    let mut codec = limited(1000, 2500);
    let mut input = BytesMut::new();
    for _ in 0..2 {
        input.extend_from_slice(&long_header(true, 1000));
        input.resize(input.len() + 1000, 1);
    }
    input.extend_from_slice(&long_header(false, 501));
    assert!(
        codec.decode(&mut input).is_err(),
        "2501 bytes in three parts"
    );

    // A complete message starts the count again.
    let mut codec = limited(1000, 2500);
    let mut input = BytesMut::new();
    for more in [true, false, true, false] {
        input.extend_from_slice(&long_header(more, 1000));
        input.resize(input.len() + 1000, 1);
    }
    for _ in 0..2 {
        assert!(matches!(
            codec.decode(&mut input),
            Ok(Some(Message::Message(_)))
        ));
    }
}

#[test]
fn empty_parts_count_too_so_a_message_cannot_have_unbounded_parts() {
    let max = 100 * crate::MESSAGE_PART_OVERHEAD;
    let mut codec = limited(max, max);
    let mut input = BytesMut::new();
    for _ in 0..100 {
        input.extend_from_slice(&[0b0000_0001, 0]);
    }
    assert!(
        codec.decode(&mut input).unwrap().is_none(),
        "100 empty parts fit"
    );
    input.extend_from_slice(&[0b0000_0001, 0]);
    assert!(codec.decode(&mut input).is_err(), "the 101st does not");
}

#[test]
fn a_command_frame_is_held_to_the_frame_limit() {
    let mut codec = limited(100, 1000);
    let mut input = BytesMut::from(&[0b0000_0110][..]);
    input.extend_from_slice(&101u64.to_be_bytes());
    assert!(codec.decode(&mut input).is_err());
}

#[test]
fn without_limits_large_declared_frames_are_still_accepted() {
    let mut codec = ZmqCodec::new();
    codec.state = DecoderState::FrameHeader;
    codec.waiting_for = 1;
    let mut input = long_header(false, 10 << 20);
    assert!(
        codec.decode(&mut input).unwrap().is_none(),
        "waits for the body"
    );
}
