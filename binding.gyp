{
  "targets": [
    {
      "target_name": "maelstrom",
      "sources": [
        "native/addon.cc",
        "native/auth/envelope.cc",
        "native/auth/gmac.cc",
        "native/bindings/auth.cc",
        "native/bindings/constants.cc",
        "native/bindings/engine.cc",
        "native/bindings/fuse.cc",
        "native/bindings/lab.cc",
        "native/bindings/netsync.cc",
        "native/engine/control.cc",
        "native/engine/datapath.cc",
        "native/engine/report_format.cc",
        "native/engine/setup.cc",
        "native/fec/bench.cc",
        "native/fec/decoder.cc",
        "native/fec/encoder.cc",
        "native/fec/packet_id.cc",
        "native/fec/repair_format.cc",
        "native/fec/simulate.cc",
        "native/fec/synthetic.cc",
        "native/fec/xor.cc",
        "native/fuse/session.cc",
        "native/lab/blaster.cc",
        "native/lab/delay_line.cc",
        "native/lab/wan_loss.cc",
        "native/netsync/feedback_format.cc",
        "native/netsync/tracker.cc",
        "native/xsk/port.cc",
        "native/xsk/xdp_query.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native",
        "bpf",
        "<!@(pkg-config --cflags-only-I fuse3 | sed s/-I//g)"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_ENABLE_TYPE_CHECK_ON_AS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lxdp", "-lbpf", "-lxxhash", "-lsodium", "-lcrypto", "<!@(pkg-config --libs fuse3)"]
    },
    {
      "target_name": "maelstrom_yardstick",
      "sources": [
        "native/yardstick/isal.cc",
        "native/fec/packet_id.cc",
        "native/fec/synthetic.cc",
        "native/fec/xor.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lisal", "-lxxhash"]
    }
  ]
}
