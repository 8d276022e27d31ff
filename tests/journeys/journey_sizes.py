"""The size every journey trains at."""

# Every journey trains at this size: the packaged config's families and stages, CPU-sized
# (ResNet-18 from random init, 2 frames of 32 px, one epoch, fp32 so numbers do not depend on the CPU)
TINY = ["model.backbone=resnet18", "model.pretrained=null", "model.mem_size=16", "data.num_frames=2",
        "data.resize=32", "data.crop=32", "data.workers=0", "trainer.epochs=1", "trainer.batch_size=4",
        "trainer.val_every=1", "trainer.precision=32-true", "trainer.logger=[]"]
